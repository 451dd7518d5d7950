#!/usr/bin/env bash
# History bench (the snapshots issue): what snapshots cost as they pile up.
# One encrypted volume with WRITTEN of data, then snapshots up to 1, 50 and
# 200 (a few MiB overwritten between two); at each count: the time of one
# more snapshot create, the bytes it adds to the store, the time of one
# snapshot delete, unmount time, cold mount + first read (caches dropped),
# and the mount's RSS.  Targets (format 2): create and delete <= 50 ms and
# <= 64 KiB added, cold mount + first read <= 200 ms, nothing growing with
# the count.  Not a test: it prints a table.
#   usage: sudo tests/bench/history.sh [DIR]   (default /var/tmp)
#   env: WRITTEN (default 8G), COUNTS (default "1 50 200"), OVERWRITE_MB (default 4),
#        FORMATS (default "1 2": the pool formats, in turn, each with its own store)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/e2e/json.sh"   # jget
EVFS=${EVFS_BIN:-$ROOT/build/fs/fuse/evfs} CTL=${EVFSCTL_BIN:-$ROOT/build/cli/evfsctl}
BASE=${1:-/var/tmp}; WRITTEN=${WRITTEN:-8G}; COUNTS=${COUNTS:-"1 50 200"}; OW=${OVERWRITE_MB:-4}
FORMATS=${FORMATS:-"1 2"}
W=
cleanup() { set +e; [ -n "$W" ] || return 0; mountpoint -q "$W/mnt" && { fusermount3 -u "$W/mnt" || umount -l "$W/mnt"; }; rm -rf "$W"; }
trap cleanup EXIT
run_format() {
W=$(mktemp -d "$BASE/evfs-history.XXXXXX")
mkdir -p "$W/mnt"
export EVFS_STORE=$W/store
$CTL init --keyfile "$W/root.key" >/dev/null; $CTL kms grant >/dev/null
sed -i "s/^pool_format =.*/pool_format = $1/" "$EVFS_STORE/evfs.ini"
echo "== pool format $1"
bytes=$(numfmt --from=iec "$WRITTEN")
$CTL volume create v --size $((bytes + (1 << 30))) --encrypt >/dev/null
now_ms() { date +%s%N | awk '{printf "%.1f", $1 / 1e6}'; }
mount_() { $EVFS "$EVFS_STORE" "$W/mnt"; for _ in $(seq 100); do mountpoint -q "$W/mnt" && return; sleep 0.05; done; }
umount_() { fusermount3 -u "$W/mnt"; while pgrep -f "evfs $EVFS_STORE" >/dev/null; do sleep 0.01; done; }
store_kib() { du -sk "$EVFS_STORE" | cut -f1; }
mount_
$CTL attach v >/dev/null
echo "writing $WRITTEN ..." >&2
dd if=/dev/urandom of="$W/mnt/volumes/v" bs=4M count=$((bytes / 4194304)) oflag=direct conv=notrunc,fsync status=none
n=0
printf "%-10s %12s %12s %12s %12s %16s %10s\n" snapshots "create ms" "added KiB" "delete ms" "umount ms" "mount+read ms" "RSS MiB"
for target in $COUNTS; do
  while [ $n -lt $((target - 1)) ]; do
    dd if=/dev/urandom of="$W/mnt/volumes/v" bs=1M count="$OW" seek=$(( (RANDOM * 7919 + n * 131) % (bytes >> 20) )) \
      oflag=direct conv=notrunc status=none
    $CTL snapshot create v "s$n" >/dev/null; n=$((n + 1))
  done
  sync
  k0=$(store_kib); t0=$(now_ms); $CTL snapshot create v "s$n" >/dev/null; t1=$(now_ms); k1=$(store_kib)
  n=$((n + 1))
  $CTL snapshot create v probe >/dev/null
  t2=$(now_ms); $CTL snapshot delete probe >/dev/null; t3=$(now_ms)
  pid=$(pgrep -f "evfs $EVFS_STORE" | head -1)
  rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
  t4=$(now_ms); umount_; t5=$(now_ms)
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  t6=$(now_ms); mount_; dd if="$W/mnt/volumes/v" of=/dev/null bs=4k count=1 iflag=direct status=none; t7=$(now_ms)
  awk -v c="$target" -v add=$((k1 - k0)) -v rss="$rss" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" \
      -v t4="$t4" -v t5="$t5" -v t6="$t6" -v t7="$t7" \
      'BEGIN { printf "%-10s %12.1f %12d %12.1f %12.1f %16.1f %10s\n", c, t1 - t0, add, t3 - t2, t5 - t4, t7 - t6, rss }'
done
lin=$($CTL --json volume show v | jget lineage)
echo "format $1: maps on disk: $(du -sh --exclude=data "$EVFS_STORE/pools/$lin" | cut -f1) for $n snapshots + the volume" >&2
umount_; cleanup; W=
}
for f in $FORMATS; do run_format "$f"; done
