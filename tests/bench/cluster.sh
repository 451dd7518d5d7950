#!/usr/bin/env bash
# Side-by-side benchmark on one throwaway single-node Ceph (issue 10): an
# evfs volume file on a store whose pools are in RADOS, against RBD exposed
# the same way, as a file: qemu-storage-daemon's FUSE export of an RBD image
# (rbd: plain, no encryption) and of an RBD image formatted with `rbd
# encryption format IMG luks2` opened with encrypt.format=luks2 (rbd-luks2:
# the encrypted peer).
#   rows   fio psync queue depth 1: sequential write 1 MiB (end_fsync) and
#          cold read (MB/s), random read and write 4 KiB (IOPS); fio libaio
#          direct=1 queue depth 16: random read and write 4 KiB (IOPS)
# The systems run in turn each round, each set up fresh and torn down; the
# table is the MEDIAN of ROUNDS rounds, then evfs/rbd-luks2 and evfs/rbd.
# Memstore keeps everything in RAM, so this compares the data paths (client
# CPU, round trips, FUSE), not disks (see ../shared/PEERS.md on noise).
# Each system's data is deleted when its turn ends: a full memstore OSD
# stops every write (it looked like a hung peer until that was found).
#   usage: sudo tests/bench/cluster.sh    (starts Ceph itself: tests/cluster/ceph.sh)
#   env: SIZE (default 256M), RUNTIME (random rows, seconds, default 10),
#        ROUNDS (default 3), SYSTEMS (default "evfs rbd-luks2 rbd"); packages: fio, qemu-system-common +
#        qemu-block-extra (qemu-storage-daemon with the rbd driver), ceph-common.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${1:-}" != --inside ]; then
  # Memstore holds the data in RAM and stops every write once it is 95 %
  # full (1 GiB by default): room for one system's data at a time, which
  # teardown deletes after each.
  EVFS_CEPH_MEMSTORE_BYTES=${EVFS_CEPH_MEMSTORE_BYTES:-4294967296} \
    exec bash "$ROOT/tests/cluster/ceph.sh" run -- bash "$0" --inside
fi
: "${EVFS_CEPH_CONF:?}" "${EVFS_CEPH_POOL:?}"
EVFS=${EVFS_BIN:-$ROOT/build/fs/fuse/evfs} CTL=${EVFSCTL_BIN:-$ROOT/build/cli/evfsctl}
SIZE=${SIZE:-256M}; RUNTIME=${RUNTIME:-10}; ROUNDS=${ROUNDS:-3}
command -v fio >/dev/null && command -v qemu-storage-daemon >/dev/null && command -v rbd >/dev/null ||
  { echo "bench: install fio, qemu-system-common, qemu-block-extra and ceph-common"; exit 1; }
[ -x "$EVFS" ] && [ -x "$CTL" ] || { echo "bench: build evfs first ($EVFS, $CTL)"; exit 1; }
W=$(mktemp -d /var/tmp/evfs-cbench.XXXXXX)
C=(-c "$EVFS_CEPH_CONF" -p "$EVFS_CEPH_POOL")
S_MNT="" S_PID="" S_DIR="" TARGET="" IMG=""
teardown() {
  set +e
  if [ -n "$S_DIR" ] && [ -n "$S_MNT" ] && mountpoint -q "$S_MNT"; then      # evfs
    "$CTL" --store "$S_DIR/store" detach bench >/dev/null 2>&1
    "$CTL" --store "$S_DIR/store" volume delete bench >/dev/null 2>&1   # its objects go too
    fusermount3 -u "$S_MNT" || umount -l "$S_MNT"
  elif [ -n "$S_PID" ]; then                                                 # qemu-storage-daemon
    kill -TERM "$S_PID" 2>/dev/null
  fi
  for _ in $(seq 100); do [ -n "$S_PID" ] && kill -0 "$S_PID" 2>/dev/null || break; sleep 0.1; done
  [ -n "$S_PID" ] && kill -0 "$S_PID" 2>/dev/null && kill -KILL "$S_PID"
  [ -n "$S_MNT" ] && mountpoint -q "$S_MNT" && umount -l "$S_MNT"
  [ -n "$IMG" ] && rbd "${C[@]}" rm "$IMG" >/dev/null 2>&1
  S_MNT="" S_PID="" S_DIR="" TARGET="" IMG=""
  set -e
}
cleanup() { teardown; rm -rf "$W"; }
trap cleanup EXIT
wait_mounted() { for _ in $(seq 200); do mountpoint -q "$1" && return 0; kill -0 "$2" 2>/dev/null || return 1; sleep 0.05; done; return 1; }

setup_evfs() {
  S_DIR=$W/evfs.$ROUND; mkdir -p "$S_DIR/mnt"
  "$CTL" --store "$S_DIR/store" init --keyfile "$S_DIR/root.key" --rados-conf "$EVFS_CEPH_CONF" \
    --rados-pool "$EVFS_CEPH_POOL" >/dev/null
  "$CTL" --store "$S_DIR/store" kms grant >/dev/null
  "$CTL" --store "$S_DIR/store" volume create bench --size "$SIZE" --encrypt >/dev/null
  "$EVFS" "$S_DIR/store" "$S_DIR/mnt"
  S_MNT=$S_DIR/mnt
  for _ in $(seq 100); do [ -d "$S_MNT/volumes" ] && break; sleep 0.1; done
  S_PID=$(pgrep -f "evfs $S_DIR/store $S_MNT" | head -1)
  "$CTL" --store "$S_DIR/store" attach bench >/dev/null
  TARGET=$S_MNT/volumes/bench
}
qsd() { # NAME BLOCKDEV-OPTIONS...: export the rbd node as the file $W/NAME.export
  touch "$W/$1.export"
  qemu-storage-daemon "${@:2}" \
    --export "type=fuse,id=e,node-name=r,mountpoint=$W/$1.export,writable=on" >"$W/$1.log" 2>&1 &
  S_PID=$! S_MNT=$W/$1.export
  wait_mounted "$S_MNT" "$S_PID" || { cat "$W/$1.log"; return 1; }
  TARGET=$S_MNT
}
setup_rbd() {
  IMG=bench-plain-$ROUND
  rbd "${C[@]}" create --size "$SIZE" "$IMG"
  qsd rbd --blockdev "driver=rbd,pool=$EVFS_CEPH_POOL,image=$IMG,conf=$EVFS_CEPH_CONF,node-name=r,cache.direct=on"
}
setup_rbd_luks2() {
  IMG=bench-luks2-$ROUND
  printf 'bench-passphrase' >"$W/pw"
  # the LUKS2 header takes 16 MiB of the image
  rbd "${C[@]}" create --size $(( $(numfmt --from=iec "$SIZE") / 1048576 + 16 ))M "$IMG"
  rbd "${C[@]}" encryption format "$IMG" luks2 "$W/pw" >/dev/null
  qsd rbd-luks2 --object "secret,id=sec0,file=$W/pw" \
    --blockdev "driver=rbd,pool=$EVFS_CEPH_POOL,image=$IMG,conf=$EVFS_CEPH_CONF,encrypt.format=luks2,encrypt.key-secret=sec0,node-name=r,cache.direct=on"
}

drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
# A peer that stops answering (qemu-storage-daemon's FUSE export was seen to
# hang on a flush) costs its cell, not the run: fio is given a deadline.
# Once a system hung in a round, its other rows of that round are skipped,
# and its FUSE connection is aborted: a fio job stuck in a FUSE request
# cannot be killed otherwise, and would keep $(...) waiting for ever.
fuse_abort() { # MOUNTPOINT
  local dev
  dev=$(awk -v m="$1" '$5 == m { print $3 }' /proc/self/mountinfo | head -1)
  [ -n "$dev" ] || return 0
  mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || true
  echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort" 2>/dev/null || true
}
fiorun() {
  [ ! -e "$W/hung" ] || return 0     # (a flag file: fiorun runs in $(...))
  timeout -k 5 $(( RUNTIME * 3 + 120 )) fio --output-format=terse --terse-version=3 --name=b --filename="$TARGET" \
    --size="$SIZE" "$@" 2>>"$W/fio.log" ||
    { touch "$W/hung"; fuse_abort "$S_MNT"
      echo "bench: fio failed or timed out on $TARGET ($*); its FUSE connection aborted, the rest of this round skipped" >&2; }
}
field() { awk -F';' -v i="$2" -v d="$3" 'NF >= i && $i != "" { printf "%.1f", $i / d; ok = 1 } END { if (!ok) print "ERR" }' <<<"$1"; }
declare -A V
measure() {
  local n=$1 o
  o=$(fiorun --ioengine=psync --rw=write --bs=1M --end_fsync=1); V[$n,sw]+="$(field "$o" 48 1024) "
  drop; o=$(fiorun --ioengine=psync --rw=read --bs=1M); V[$n,sr]+="$(field "$o" 7 1024) "
  drop; o=$(fiorun --ioengine=psync --rw=randread --bs=4k --time_based --runtime="$RUNTIME")
  V[$n,rr1]+="$(field "$o" 8 1) "
  o=$(fiorun --ioengine=psync --rw=randwrite --bs=4k --time_based --runtime="$RUNTIME" --end_fsync=1)
  V[$n,rw1]+="$(field "$o" 49 1) "
  drop; o=$(fiorun --ioengine=libaio --direct=1 --iodepth=16 --rw=randread --bs=4k --time_based --runtime="$RUNTIME")
  V[$n,rr16]+="$(field "$o" 8 1) "
  o=$(fiorun --ioengine=libaio --direct=1 --iodepth=16 --rw=randwrite --bs=4k --time_based --runtime="$RUNTIME")
  V[$n,rw16]+="$(field "$o" 49 1) "
}
read -r -a SYSTEMS <<<"${SYSTEMS:-evfs rbd-luks2 rbd}"    # env SYSTEMS: a subset, in turn
for ROUND in $(seq "$ROUNDS"); do
  for s in "${SYSTEMS[@]}"; do
    echo "round $ROUND: $s" >&2
    rm -f "$W/hung"
    if "setup_${s//-/_}"; then measure "$s"; else echo "bench: $s could not be set up (round $ROUND)" >&2; fi
    teardown
  done
done
median() { tr ' ' '\n' <<<"$1" | { grep -E '^[0-9.]+$' || true; } | sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2); else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
printf '\nmedians of %s rounds, SIZE=%s, RUNTIME=%ss, one memstore OSD on 127.0.0.1\n' "$ROUNDS" "$SIZE" "$RUNTIME"
printf '| %-34s | %9s | %9s | %9s | %12s | %8s |\n' row evfs rbd-luks2 rbd evfs/rbd-luks2 evfs/rbd
printf '|%s|\n' "------------------------------------|-----------|-----------|-----------|--------------|----------"
for r in sw:"seq write 1M psync qd1 (MB/s)" sr:"seq read 1M psync cold (MB/s)" rr1:"rand read 4k psync qd1 (IOPS)" \
         rw1:"rand write 4k psync qd1 (IOPS)" rr16:"rand read 4k libaio qd16 (IOPS)" rw16:"rand write 4k libaio qd16 (IOPS)"; do
  k=${r%%:*}; e=$(median "${V[evfs,$k]:-}"); l=$(median "${V[rbd-luks2,$k]:-}"); p=$(median "${V[rbd,$k]:-}")
  printf '| %-34s | %9s | %9s | %9s | %12s | %8s |\n' "${r#*:}" "$e" "$l" "$p" "$(ratio "$e" "$l")" "$(ratio "$e" "$p")"
done
