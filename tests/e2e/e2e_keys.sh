#!/usr/bin/env bash
# KMS and attach/detach rules against a live mount: R10-R14, R16-R21.
. "$(dirname "$0")/lib.sh"
ctl init --keyfile "$T/root.key" >/dev/null
# R10: no grant -> encrypted create refused, message says ask a security admin
expect_fail 1 "$EVFSCTL_BIN" volume create e0 --size 8M --encrypt
grep -q "security administrator" "$T/err" || die "R10 message"
id nobody >/dev/null 2>&1 || useradd -M nobody
chmod 755 "$T"
expect_fail 1 setpriv --reuid nobody --regid nogroup --clear-groups "$EVFSCTL_BIN" kms grant
ok "R10: no encryption before a grant; a non-admin cannot reach or grant"
ctl kms grant >/dev/null
# R11: evs/default exists and cannot be disabled or scheduled
ctl key show evs/default >/dev/null
expect_fail 1 "$EVFSCTL_BIN" key disable evs/default
expect_fail 1 "$EVFSCTL_BIN" key schedule-deletion evs/default --days 30
ok "R11: evs/default created by the grant, cannot be disabled or scheduled for deletion"
# R2: --encrypt alone uses evs/default
ctl volume create d1 --size 8M --encrypt >/dev/null
DEF=$(ctl --json key show evs/default | sed 's/.*"id":"\([^"]*\)".*/\1/')
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
expect_fail 1 "$EVFSCTL_BIN" detach v1
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
KID=$(ctl --json key show k1 | sed 's/.*"id":"\([^"]*\)".*/\1/')
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
# audit log
ctl kms audit --verify >/dev/null
grep -q "dk.unwrap" <<<"$(ctl kms audit)" || die "audit must record unwraps"
ok "audit log records KMS operations and verifies"
finish
