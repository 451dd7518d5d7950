#!/usr/bin/env bash
# R27 and R10 with a second Unix user against a live `-o allow_other` mount:
# private store modes, volume files 0600 of their creator, the kernel
# refusing the other user, control requests (attach, detach, grant,
# snapshot/backup/image/export of someone else's data) checked against
# SO_PEERCRED with clear messages and no change of state, and a project
# grant that opens encryption to every user of the project.
. "$(dirname "$0")/lib.sh"
OTHER=evfs-e2e-other
MADE_USER=0
command -v runuser >/dev/null || { echo "SKIPPED: runuser (util-linux) not installed" >&2; exit 77; }
if ! id -u "$OTHER" >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin "$OTHER" ||
    { echo "SKIPPED: cannot create test user $OTHER" >&2; exit 77; }
  MADE_USER=1
fi
access_cleanup() { cleanup; [ "$MADE_USER" = 0 ] || userdel "$OTHER" 2>/dev/null; rm -f "/root/evfs-e2e-probe.$$"; }
trap access_cleanup EXIT
OUID=$(id -u "$OTHER")
# The other user must reach $MNT through $T (mktemp made it 0700); the store
# itself stays 0700.
chmod 711 "$T"
as_other() { runuser -u "$OTHER" -- env EVFS_STORE="$STORE" "$@"; }
# The build tree may sit under a private directory (a fresh clone in a
# mktemp -d): give the other user its own copy of evfsctl.
mkdir -m 755 "$T/bin"; install -m 755 "$EVFSCTL_BIN" "$T/bin/evfsctl"
octl() { as_other "$T/bin/evfsctl" "$@"; }
# open_as_other PATH MODE: the errno name of open(2) by the other user, or OK.
open_as_other() { as_other python3 -c '
import errno, os, sys
try: os.close(os.open(sys.argv[1], {"r": os.O_RDONLY, "w": os.O_WRONLY}[sys.argv[2]])); print("OK")
except OSError as e: print(errno.errorcode[e.errno])' "$1" "$2"; }
attached() { getfattr --absolute-names --only-values -n user.evfs.attached "$MNT/volumes/$1"; }

# --- R10: no grant, no encryption; the message says whom to ask -------------
init_store >/dev/null
expect_fail 1 "$EVFSCTL_BIN" volume create e0 --size 8M --encrypt
grep -q "ask a security administrator" "$T/err" || die "R10: refusal must say to ask a security administrator"
[ -z "$(ctl volume list | tail -n +2)" ] || die "R10: a refused create must leave no volume"
ok "R10: before the grant an encrypted create is refused with 'ask a security administrator'"

ctl kms grant >/dev/null
ctl volume create v1 --size 16M --encrypt >/dev/null
head -c 1M /dev/urandom >"$T/d1"
mnt -o allow_other
grep -q " $MNT fuse.evfs .*default_permissions.*allow_other" /proc/mounts || die "mount options: $(grep " $MNT " /proc/mounts)"
ctl attach v1 >/dev/null
dd if="$T/d1" of="$MNT/volumes/v1" conv=notrunc,fsync status=none
ctl snapshot create v1 s1 >/dev/null; ctl backup create v1 b1 >/dev/null; ctl image create v1 i1 >/dev/null
ctl volume create p1 --size 8M >/dev/null; ctl image create p1 pi1 >/dev/null
ok "-o allow_other is accepted and reaches the kernel with default_permissions"

# --- R27: the store is private, every file and directory in it --------------
check_store_modes() {
  local bad
  bad=$(find "$STORE" \( -type d ! -perm 700 -o -type f ! -perm 600 -o ! -type d ! -type f -o ! -user root \) \
    -printf '%m %u %p\n')
  [ -z "$bad" ] || die "R27: store entries not 0700/0600 root: $bad"
  if on_pg; then   # pools in RADOS, catalog and key store in PostgreSQL: granted to no other role
    for f in evfs.ini evfs.lock pools backups; do [ -e "$STORE/$f" ] || die "missing $STORE/$f"; done
    ls "$STORE"/backups/* >/dev/null || die "walk did not see backups"
    [ "$(pg_grants)" = 0 ] || die "R27: the store's schemas are granted to other roles: $(pg_grants list)"
    return
  fi
  for f in evfs.ini catalog.db kms.db evfs.lock pools backups; do [ -e "$STORE/$f" ] || die "missing $STORE/$f"; done
  # Format 2 pools (the default): block files; format 1: maps/ and tags.
  { ls "$STORE"/pools/*/roots "$STORE"/pools/*/pages "$STORE"/pools/*/journal >/dev/null 2>&1 ||
    ls "$STORE"/pools/*/maps/*.map "$STORE"/pools/*/tags >/dev/null; } &&
  ls "$STORE"/pools/*/data "$STORE"/backups/* >/dev/null ||
    die "walk did not see pool files, maps and backups"
}
[ "$(stat -c %a "$STORE")" = 700 ] || die "store dir mode"
check_store_modes
if on_pg; then
  ok "R27: the store is 0700 and all $(find "$STORE" | wc -l) entries (ini, lock, backups, the empty pools/) are 0700/0600 root; its PostgreSQL schemas are granted to no other role (dbs, pool files: local store only)"
else
  ok "R27: the store is 0700 and all $(find "$STORE" | wc -l) entries (dbs, WAL, lock, ini, pools, maps, backups) are 0700/0600 root"
fi

# --- R27: the volume file belongs to its creator, 0600; the kernel refuses others
[ "$(stat -c '%a %u' "$MNT/volumes/v1")" = "600 0" ] || die "volume file: $(stat -c '%a %u' "$MNT/volumes/v1")"
for f in volumes/v1 snapshots/s1 backups/b1 images/i1 images/pi1; do
  for m in r w; do
    got=$(open_as_other "$MNT/$f" $m)
    [ "$got" = EACCES ] || die "R27: $OTHER open($f, $m) gave $got, expected EACCES"
  done
done
as_other cat "$MNT/volumes/v1" >/dev/null 2>&1 && die "the other user read the volume"
ok "R27: volume v1 is 0600 uid 0; $OTHER gets EACCES opening it (and root's snapshot/backup/images) for read and write"

got=$(as_other ls "$STORE" 2>&1 || true)
grep -q "Permission denied" <<<"$got" || die "the other user listed the store: $got"
if on_pg; then
  [ "$(open_as_other "$STORE/evfs.ini" r)" = EACCES ] || die "the other user opened evfs.ini"
  ok "R27: $OTHER cannot list the store directory or open evfs.ini (kms.db: local store only; the key store is in PostgreSQL)"
else
  [ "$(open_as_other "$STORE/kms.db" r)" = EACCES ] || die "the other user opened kms.db"
  ok "R27: $OTHER cannot list the store directory or open kms.db"
fi

# --- control requests run with the caller's credentials --------------------
octl volume list >"$T/out" || die "the other user must reach the mount's control socket (/run/evfs mode?)"
grep -q "^v1 " "$T/out" || die "volume list through the mount: $(cat "$T/out")"
ok "$OTHER reaches the mount's control socket (store dir not needed: socket in /run/evfs)"

expect_fail 1 octl detach v1
grep -q "detach volume v1: permission denied" "$T/err" || die "detach message must name the volume"
[ "$(attached v1)" = 1 ] || die "v1 detached by another user"
cmp -n 1M "$T/d1" "$MNT/volumes/v1" || die "v1 data after refused detach"
ctl detach v1 >/dev/null
expect_fail 1 octl attach v1
grep -q "attach volume v1: permission denied" "$T/err" || die "attach message must name the volume"
[ "$(attached v1)" = 0 ] || die "v1 attached by another user"
ctl attach v1 >/dev/null
ok "R27: $OTHER cannot detach or attach v1 ('permission denied' naming v1); its state does not change"

expect_fail 1 octl kms grant
grep -q "not a security administrator" "$T/err" && grep -q "ask a security administrator (root)" "$T/err" ||
  die "grant refusal message"
expect_fail 1 octl kms grant --project p2
expect_fail 1 octl kms revoke
ctl kms audit >"$T/audit"
grep -q "uid=$OUID .* grant .*Operation not permitted" "$T/audit" || die "refused grant not audited"
expect_fail 1 "$EVFSCTL_BIN" --project p2 volume create x --size 8M --encrypt
grep -q "ask a security administrator" "$T/err" || die "p2 must still have no grant"
ctl volume create still-ok --size 8M --encrypt >/dev/null   # default project still granted
ok "R10: $OTHER cannot grant or revoke ('ask a security administrator'); refusals audited; grants unchanged"

# The audit log names every project's users and keys: root and the security
# administrators read it, another user is refused (it was readable by anyone
# who could reach the control socket).
expect_fail 1 octl kms audit
grep -q "permission denied: the audit log is readable by root and the security administrators" "$T/err" ||
  die "audit read by $OTHER: $(cat "$T/err")"
expect_fail 1 octl kms audit --verify
ctl kms audit --verify >/dev/null || die "root cannot verify the audit log"
ok "kms audit: $OTHER is refused (root and security administrators only)"

# Copying someone else's data out is refused too (bugs found by this test:
# a snapshot of root's volume used to belong to, and be readable by, the
# caller; image export used to create the file as root anywhere).
before=$(ctl snapshot list | wc -l)
for cmd in "snapshot create v1 os1" "backup create v1 ob1" "image create v1 oi1" \
  "volume create ov1 --from-snapshot s1" "volume create ov2 --from-backup b1" "image copy pi1 oi2" \
  "image export pi1 $T/oexp"; do
  # shellcheck disable=SC2086
  expect_fail 1 octl $cmd
  grep -q "permission denied: it belongs to uid 0" "$T/err" || die "message for: $cmd"
done
[ "$(ctl snapshot list | wc -l)" = "$before" ] && [ ! -e "$T/oexp" ] || die "state changed by refused commands"
ok "R27: $OTHER cannot snapshot, back up, image, clone, copy or export root's objects"

octl volume create u2 --size 8M >/dev/null
octl image create u2 ui >/dev/null
expect_fail 1 octl image export ui "/root/evfs-e2e-probe.$$"
grep -q "Permission denied" "$T/err" && [ ! -e "/root/evfs-e2e-probe.$$" ] || die "export planted a file as root"
mkdir "$T/odir"; chown "$OTHER" "$T/odir"
octl image export ui "$T/odir/ui.raw" >/dev/null
(cd "$T/odir" && octl image export ui rel.raw >/dev/null)
[ "$(stat -c '%u %a' "$T/odir/ui.raw")" = "$OUID 600" ] && [ "$(stat -c '%u' "$T/odir/rel.raw")" = "$OUID" ] ||
  die "export files must belong to the caller"
expect_fail 1 octl image replicate ui --to-store "$STORE"
grep -q "not a store of yours" "$T/err" || die "replicate into root's store"
ok "R27: export runs with the caller's file rights (no file in /root; relative paths land in the caller's cwd)"

# --- R10: after a grant every user of the project can use encryption -------
expect_fail 1 octl --project p3 volume create u3 --size 8M --encrypt
grep -q "ask a security administrator (root) to run 'evfsctl kms grant --project p3'" "$T/err" || die "R10 msg"
ctl kms grant --project p3 >/dev/null
octl --project p3 volume create u3 --size 8M --encrypt >/dev/null
octl --project p3 attach u3 >/dev/null
ctl --project p3 volume create r3 --size 8M --encrypt >/dev/null
U3="$MNT/volumes/u3@p3"
[ -e "$U3" ] || U3=$(find "$MNT/volumes" -name 'u3*' | head -1)
[ "$(stat -c '%a %u' "$U3")" = "600 $OUID" ] || die "u3 owner/mode: $(stat -c '%a %u' "$U3")"
head -c 1M /dev/urandom >"$T/d3"; chmod 644 "$T/d3"
as_other dd if="$T/d3" of="$U3" conv=notrunc,fsync status=none
as_other cmp -n 1M "$T/d3" "$U3" || die "the other user's own encrypted volume"
[ "$(getfattr --absolute-names --only-values -n user.evfs.encrypted "$U3")" = 1 ] || die "u3 not encrypted"
[ "$(open_as_other "$MNT/volumes/v1" r)" = EACCES ] || die "v1 still private"
ok "R10: after root granted p3, $OTHER and root both create encrypted volumes there; u3 is $OTHER's, 0600, usable"

umnt
check_store_modes
expect_fail 1 octl volume list
grep -q "permission denied" "$T/err" || die "unmounted: other user must get permission denied"
ok "R27: unmounted, $OTHER cannot open the store ('permission denied'); modes still 0700/0600 after unmount"
finish
