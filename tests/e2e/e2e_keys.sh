#!/usr/bin/env bash
# KMS and attach/detach rules against a live mount: R10-R14, R16-R21.
# ctest runs it twice: root key in a key file (e2e_keys) and in a SoftHSM2
# token (e2e_keys_pkcs11, EVFS_E2E_KMS=pkcs11).
. "$(dirname "$0")/lib.sh"
init_store >/dev/null
# R10: no grant -> encrypted create refused, message says ask a security admin
expect_fail 1 "$EVFSCTL_BIN" volume create e0 --size 8M --encrypt
grep -q "security administrator" "$T/err" || die "R10 message"
id nobody >/dev/null 2>&1 || useradd -M nobody
chmod 755 "$T"; mkdir -m 755 "$T/bin"; install -m 755 "$EVFSCTL_BIN" "$T/bin/evfsctl"   # build tree may be private
expect_fail 1 setpriv --reuid nobody --regid nogroup --clear-groups "$T/bin/evfsctl" kms grant
grep -q "evfsctl: store .*permission denied" "$T/err" || die "a non-admin must be refused by the store, not by exec"
ok "R10: no encryption before a grant; a non-admin cannot reach or grant"
ctl kms grant >/dev/null
# R11: evs/default exists and cannot be disabled or scheduled
ctl key show evs/default >/dev/null
expect_fail 1 "$EVFSCTL_BIN" key disable evs/default
expect_fail 1 "$EVFSCTL_BIN" key schedule-deletion evs/default --days 30
ok "R11: evs/default created by the grant, cannot be disabled or scheduled for deletion"
# R2: --encrypt alone uses evs/default
ctl volume create d1 --size 8M --encrypt >/dev/null
DEF=$(ctl --json key show evs/default | jget key.id)
grep -q "\"key\":\"$DEF\"" <<<"$(ctl --json volume show d1)" || die "R2: default key not used"
ok "R2: --encrypt without --key uses evs/default"
# R12 state machine with bad input
ctl key create k1 >/dev/null
expect_fail 2 "$EVFSCTL_BIN" key schedule-deletion k1 --days 6
expect_fail 2 "$EVFSCTL_BIN" key schedule-deletion k1 --days 1097
expect_fail 1 "$EVFSCTL_BIN" key enable k1        # already enabled
expect_fail 1 "$EVFSCTL_BIN" key show nosuchkey
ctl key disable k1 >/dev/null; expect_fail 1 "$EVFSCTL_BIN" key disable k1
ctl key enable k1 >/dev/null
ctl key schedule-deletion k1 --days 7 >/dev/null
grep -q '"state":"PendingDeletion"' <<<"$(ctl --json key show k1)" || die "pending"
ctl key cancel-deletion k1 >/dev/null
grep -q '"state":"Disabled"' <<<"$(ctl --json key show k1)" || die "cancel -> Disabled"
ctl key enable k1 >/dev/null
ok "R12: Enabled/Disabled/PendingDeletion transitions; days 7..1096; refused transitions exit non-zero"
# R16-R18: volume under k1, attached, keeps working while the key is disabled
ctl volume create v1 --size 32M --encrypt --key k1 >/dev/null
mnt; ctl attach v1 >/dev/null
head -c 4M /dev/urandom > "$T/d"; dd if="$T/d" of="$MNT/volumes/v1" conv=notrunc,fsync status=none
ctl key disable k1 > "$T/out"; grep -q "volume *v1" "$T/out" || die "R20: disable must list dependents"
ok "R20: disabling the key lists the volume that depends on it"
dd if="$T/d" of="$MNT/volumes/v1" bs=1M seek=8 conv=notrunc,fsync status=none
cmp -n 4M "$T/d" "$MNT/volumes/v1" || die "R16: attached volume must keep working"
ok "R16: the attached volume keeps working after its key is disabled"
# The kernel releases cmp's file handle asynchronously: until it has, the
# refusal names the open handle (R35) instead of the key.
for _ in $(seq 50); do
  set +e; "$EVFSCTL_BIN" detach v1 2>"$T/err"; rc=$?; set -e
  grep -q "open file handle" "$T/err" || break
  sleep 0.1
done
cat "$T/err"; [ "$rc" = 1 ] || die "detach under a Disabled key must fail (exit $rc)"
grep -q "R18" "$T/err" || die "R18 message"
grep -q warning <<<"$(ctl detach v1 --force 2>&1)" || die "R18 warning on --force"
ok "R18: detach refused while the key is Disabled; --force detaches with a warning"
expect_fail 1 "$EVFSCTL_BIN" attach v1
grep -q "Disabled" "$T/err" && grep -q "enable" "$T/err" || die "R17 message must name state and remedy"
set +e; dd if="$MNT/volumes/v1" of=/dev/null bs=4k count=1 status=none 2>/dev/null; rc=$?; set -e
[ $rc != 0 ] || die "I/O on detached volume must fail"
ctl key enable k1 >/dev/null; ctl attach v1 >/dev/null
cmp -n 4M "$T/d" "$MNT/volumes/v1" || die "R17: data lost after re-enable"
ok "R17: attach refused while Disabled (names key, state, remedy); after enable, attach works, no data lost"
# R21: a mount re-attaches what was attached and whose key is Enabled
ctl volume create v2 --size 8M --encrypt --key k1 >/dev/null; ctl attach v2 >/dev/null
ctl key create k2 >/dev/null; ctl volume create v3 --size 8M --encrypt --key k2 >/dev/null; ctl attach v3 >/dev/null
umnt; ctl key disable k2 >/dev/null
mnt
[ "$(getfattr --only-values -n user.evfs.attached "$MNT/volumes/v1")" = 1 ] || die "v1 not re-attached"
[ "$(getfattr --only-values -n user.evfs.attached "$MNT/volumes/v3")" = 0 ] || die "v3 must not re-attach"
grep -q "v3.*attach-pending" <<<"$(ctl volume list)" || die "volume list must report v3 pending"
ok "R21: remount re-attaches volumes whose key is Enabled and reports the others"
# R13: share with another project
ctl kms grant --project p2 >/dev/null
ctl key share k1 --with p2 >/dev/null
KID=$(ctl --json key show k1 | jget key.id)
ctl --project p2 volume create pv --size 8M --encrypt --key "$KID" >/dev/null
ctl key unshare k1 --with p2 >/dev/null
expect_fail 1 "$EVFSCTL_BIN" --project p2 volume create pv2 --size 8M --encrypt --key "$KID"
ok "R13: a shared key encrypts in the other project; unsharing makes it unavailable there"
# R19: Deleted key -> crypto-shredding
umnt
ctl volume create z1 --size 8M --encrypt --key k2 >/dev/null 2>&1 || true
ctl key create k3 >/dev/null; ctl volume create s1 --size 8M --encrypt --key k3 >/dev/null
ctl key schedule-deletion k3 --days 7 >/dev/null
if command -v faketime >/dev/null; then
  faketime -f +8d "$EVFSCTL_BIN" key show k3 > "$T/out"
  grep -q "Deleted" "$T/out" || die "R12: key must be Deleted after its date"
  expect_fail 1 "$EVFSCTL_BIN" key cancel-deletion k3
  mnt; expect_fail 1 "$EVFSCTL_BIN" attach s1; grep -q "Deleted" "$T/err" || die "R19 message"; umnt
  expect_fail 1 "$EVFSCTL_BIN" fsck s1
  ok "R12/R19: at its date the key becomes Deleted; its volumes can never be attached or read"
else
  echo "SKIPPED R19 part: faketime not installed" >&2
fi
# R14: only an Enabled key wraps a new DK; the refusal names the state and is audited
ctl key create k4 >/dev/null; ctl key disable k4 >/dev/null
expect_fail 1 "$EVFSCTL_BIN" volume create w1 --size 8M --encrypt --key k4
grep -q "k4.*Disabled" "$T/err" || die "R14 message must name the key and its state"
expect_fail 1 "$EVFSCTL_BIN" volume show w1
ctl kms audit --key k4 > "$T/audit"
grep -q "dk.generate.*Required key not available" "$T/audit" || die "R14: the refused wrap must be audited"
ok "R14: a Disabled key cannot wrap a new DK; the refusal names key and state and is audited"
# R20: every kind of dependent, in text and JSON; unshare lists the other project's objects only
ctl key enable k4 >/dev/null; ctl volume create w2 --size 8M --encrypt --key k4 >/dev/null
ctl snapshot create w2 w2s >/dev/null; ctl backup create w2 w2b >/dev/null; ctl image create w2 w2i >/dev/null
ctl kms grant --project p4 >/dev/null; ctl key share k4 --with p4 >/dev/null
K4=$(ctl --json key show k4 | jget key.id)
ctl --project p4 volume create w3 --size 8M --encrypt --key "$K4" >/dev/null
ctl key disable k4 > "$T/out"
for d in "volume *w2" "snapshot *w2s" "backup *w2b" "image *w2i" "volume *w3"; do
  grep -q "$d" "$T/out" || die "R20: disable must list $d"; done
ctl key enable k4 >/dev/null
ctl --json key schedule-deletion k4 --days 30 > "$T/out"
for d in '"kind":"volume","name":"w2"' '"kind":"snapshot","name":"w2s"' '"kind":"backup","name":"w2b"' \
         '"kind":"image","name":"w2i"'; do grep -q "$d" "$T/out" || die "R20: --json must list $d"; done
ctl key cancel-deletion k4 >/dev/null; ctl key enable k4 >/dev/null
grep -q "w2s" <<<"$(ctl key show k4)" || die "R20: key show must list dependents"
ctl key unshare k4 --with p4 > "$T/out"
grep -q "volume *w3 (project p4)" "$T/out" && ! grep -q "w2" "$T/out" || die "R20: unshare lists that project's objects"
ok "R20: disable, schedule-deletion (--json), unshare and key show list volumes, snapshots, backups and images"
# R15: attached DKs live in locked (mlock'd), non-dumpable memory of the mount, released at detach
mnt; pid=$(pgrep -f "evfs $STORE $MNT" | head -1)
lck() { awk '/^VmLck/ {print $2}' "/proc/$pid/status"; }
ctl volume create m1 --size 8M --encrypt >/dev/null; ctl volume create m2 --size 8M --encrypt >/dev/null
l0=$(lck); ctl attach m1 >/dev/null; ctl attach m2 >/dev/null; l1=$(lck)
ctl detach m1 >/dev/null; ctl detach m2 >/dev/null; l2=$(lck); umnt
if grep -qa __asan_init "$EVFS_BIN"; then
  echo "SKIPPED R15 VmLck check: AddressSanitizer replaces mlock with a no-op in this build" >&2
else
  [ $((l1 - l0)) -ge 8 ] && [ "$l2" -lt "$l1" ] || die "R15: VmLck $l0 -> $l1 -> $l2 kB"
  ok "R15: each attach adds a locked page to the mount (VmLck $l0 -> $l1 kB), detach releases it ($l2 kB)"
fi
# audit log: complete and tamper-evident
ctl kms audit --verify >/dev/null
grep -q "dk.unwrap" <<<"$(ctl kms audit)" || die "audit must record unwraps"
ctl --json kms audit --key k4 | grep -q '"op":"key.share"' || die "audit --key --json"
if [ "${EVFS_E2E_STORE:-}" = shared ]; then    # the key store is schema <schema>_kms in PostgreSQL
  AUD="$(sed -n 's/^schema = //p' "$STORE/evfs.ini")_kms.audit"
  pg() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$EVFS_PG_CONNINFO_PASSFILE" -c "$1"; }
  row=$(pg "SELECT seq || ' ' || result FROM $AUD WHERE op = 'dk.generate' AND result <> 0 LIMIT 1")
  [ -n "$row" ] || die "no refused dk.generate in the audit log"
  pg "UPDATE $AUD SET result = 0 WHERE seq = ${row% *}"
  expect_fail 1 "$EVFSCTL_BIN" kms audit --verify
  pg "UPDATE $AUD SET result = ${row#* } WHERE seq = ${row% *}"
else
  cp "$STORE/kms.db" "$T/kms.bak"
  sqlite3 "$STORE/kms.db" "UPDATE audit SET result=0 WHERE op='dk.generate' AND result<>0"
  expect_fail 1 "$EVFSCTL_BIN" kms audit --verify
  cp "$T/kms.bak" "$STORE/kms.db"; rm -f "$STORE/kms.db-wal" "$STORE/kms.db-shm"
fi
ctl kms audit --verify >/dev/null
ok "audit log records KMS operations (--key, --json) and --verify detects an edited entry"
finish
