#!/usr/bin/env bash
# SIGKILL evfsctl in the middle of commands that run without a mount
# (evfsctl holds the store lock itself): snapshot create, backup create,
# restore (volume create --from-backup), image copy --encrypt, key rewrap.
# After every kill: the whole-store fsck is clean, or --repair makes it
# clean; the interrupted object is either absent or complete; retrying the
# command succeeds; and at the end every volume reads back bit for bit.
. "$(dirname "$0")/lib.sh"
new_store
START=$SECONDS
ctl key create k1 >/dev/null
ctl volume create big --size 128M --encrypt --key k1 >/dev/null
ctl volume create pl --size 48M >/dev/null
head -c 128M /dev/urandom > "$T/big"; head -c 48M /dev/urandom > "$T/pl"
mnt; ctl attach big >/dev/null; ctl attach pl >/dev/null
dd if="$T/big" of="$MNT/volumes/big" bs=4M conv=notrunc,fsync status=none
dd if="$T/pl" of="$MNT/volumes/pl" bs=4M conv=notrunc,fsync status=none
umnt
SUM_BIG=$(sha256sum < "$T/big"); SUM_PL=$(sha256sum < "$T/pl"); rm -f "$T/big" "$T/pl"
ctl backup create big bfull >/dev/null
ctl image create pl ipl >/dev/null
ctl fsck >/dev/null || die "store must be clean before the kills"
ok "setup: 128 MiB encrypted + 48 MiB plain volume, a full backup, an image ($((SECONDS - START)) s)"

KILLS=0 REPAIRS=0 COMPLETE=0 ABSENT=0
# after_kill KIND NAME: fsck clean (or repaired clean), NAME absent or complete
after_kill() {
  local kind=$1 name=$2 rc
  set +e; ctl fsck > "$T/fsck" 2>&1; rc=$?; set -e
  if [ $rc != 0 ]; then
    [ $rc = 1 ] || { cat "$T/fsck"; die "fsck after killing $kind $name: exit $rc"; }
    grep -q "^problem: .*: chunk [0-9]* (bytes" "$T/fsck" && { cat "$T/fsck"; die "kill of $kind $name damaged data"; }
    { ctl --json fsck 2>/dev/null || true; } | jget 'items.severity=problem.code' \
      | sed "s/^/${kind:-key} /" >> "$T/found"
    ctl fsck --repair > "$T/rep" 2>&1 || { cat "$T/fsck" "$T/rep"; die "--repair after killing $kind $name did not clean up"; }
    ctl fsck >/dev/null || die "fsck not clean after --repair ($kind $name)"
    REPAIRS=$((REPAIRS + 1))
  fi
  if [ -n "$kind" ] && ctl "$kind" show "$name" >/dev/null 2>&1; then
    COMPLETE=$((COMPLETE + 1))
  else
    ABSENT=$((ABSENT + 1)); return 1
  fi
}
# killed DELAY CMD...: run CMD, SIGKILL it after DELAY seconds
killed() {
  local d=$1; shift
  "$EVFSCTL_BIN" "$@" >/dev/null 2>&1 & local pid=$!
  sleep "$d"; kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  KILLS=$((KILLS + 1))
}

# 1. snapshot create (a map clone: short; kill early and late)
i=0
for d in 0.005 0.02 0.05; do
  i=$((i + 1)); killed $d snapshot create big ks$i
  after_kill snapshot ks$i || ctl snapshot create big ks$i >/dev/null
  [ $i = 3 ] || ctl snapshot delete ks$i >/dev/null
done
ok "snapshot create killed 3 times: fsck clean after --repair at most, retry succeeds"

# 2. backup create of 128 MiB (full and incremental)
i=0
for d in 0.03 0.1 0.2 0.35; do
  i=$((i + 1)); killed $d backup create big kb$i
  after_kill backup kb$i || ctl backup create big kb$i >/dev/null
  ctl backup delete kb$i >/dev/null
done
ctl backup create big kbase >/dev/null
killed 0.1 backup create big kbi --incremental
after_kill backup kbi || ctl backup create big kbi --incremental >/dev/null
ok "backup create killed 5 times (one incremental): fsck clean after --repair at most, retry succeeds"

# 3. restore: volume create --from-backup (decrypts and re-encrypts 128 MiB)
i=0
for d in 0.15 0.6 1.2; do
  i=$((i + 1)); killed $d volume create kr$i --from-backup bfull
  after_kill volume kr$i || ctl volume create kr$i --from-backup bfull >/dev/null
  [ $i = 3 ] || ctl volume delete kr$i >/dev/null
done
ok "restore killed 3 times: fsck clean after --repair at most, retry succeeds"

# 4. image copy --encrypt (48 MiB re-encrypted under k1)
i=0
for d in 0.05 0.2 0.5; do
  i=$((i + 1)); killed $d image copy ipl kc$i --encrypt --key k1
  after_kill image kc$i || ctl image copy ipl kc$i --encrypt --key k1 >/dev/null
  [ $i = 3 ] || ctl image delete kc$i >/dev/null
done
ctl volume create vc --from-image kc3 >/dev/null
ok "image copy --encrypt killed 3 times: fsck clean after --repair at most, retry succeeds"

# 5. key rotate, then rewrap killed
for d in 0.005 0.03; do
  ctl key rotate k1 >/dev/null
  killed $d key rewrap k1
  after_kill "" "" || true
  ctl key rewrap k1 >/dev/null || die "rewrap retry"
done
ctl fsck >/dev/null || die "every data key of k1 must unwrap after the rewraps"
ok "key rewrap killed 2 times: data keys still unwrap (fsck checks every chunk), retry succeeds"

# Every volume reads back identical.
mnt
for v in big pl kr3 vc; do ctl attach $v >/dev/null; done
[ "$(sha256sum < "$MNT/volumes/big")" = "$SUM_BIG" ] || die "big changed"
[ "$(sha256sum < "$MNT/volumes/pl")" = "$SUM_PL" ] || die "pl changed"
[ "$(sha256sum < "$MNT/volumes/kr3")" = "$SUM_BIG" ] || die "restore kr3 differs from big"
[ "$(sha256sum < "$MNT/volumes/vc")" = "$SUM_PL" ] || die "volume from the copied image differs from pl"
[ "$(sha256sum < "$MNT/snapshots/ks3")" = "$SUM_BIG" ] || die "snapshot ks3 differs"
[ "$(sha256sum < "$MNT/backups/kbi")" = "$SUM_BIG" ] || die "backup kbi differs"
umnt
echo "problems left by the kills and repaired (count, command, kind):"; sort "$T/found" | uniq -c
ok "after $KILLS kills ($ABSENT absent, $COMPLETE complete, $REPAIRS repaired): volumes, restore, snapshot, backup and image copy read back identical ($((SECONDS - START)) s)"
finish
