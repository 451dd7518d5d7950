#!/usr/bin/env bash
# What `evfsctl volume rekey` costs (R33), in one run: an encrypted 1 GiB
# volume with WRITTEN of data and a snapshot of it, in a fresh store per
# round.  Rows: the rekey's rate (MB of chunk data re-encrypted per second,
# the volume idle), and fio random 4 KiB reads (IOPS, 2 jobs, psync) on the
# volume with no rekey running and then while one runs, printed side by
# side with their ratio.  Compare the medians over ROUNDS (the machines are
# noisy).  Not a test: it prints one line per round.
#   usage: sudo tests/bench/rekey.sh [DIR]   (default /var/tmp)
#   env: ROUNDS (default 3), WRITTEN (default 512M), BUILD (default build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${1:-/var/tmp}; ROUNDS=${ROUNDS:-3}; WRITTEN=${WRITTEN:-512M}; BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
EVFS=$BUILD/fs/fuse/evfs CTL=$BUILD/cli/evfsctl
[ -x "$EVFS" ] && [ -x "$CTL" ] || { echo "rekey.sh: no evfs/evfsctl in $BUILD (build it first)" >&2; exit 2; }
W=
cleanup() { set +e; [ -n "$W" ] || return 0; mountpoint -q "$W/mnt" && { fusermount3 -u "$W/mnt" || umount -l "$W/mnt"; }; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
reads() {   # SECONDS: random 4 KiB read IOPS over the written part
  fio --output-format=terse --terse-version=3 --filename="$W/mnt/volumes/v" --size="$WRITTEN" --ioengine=psync \
    --name=rr --rw=randread --bs=4k --runtime="$1" --time_based --numjobs=2 --group_reporting | awk -F';' '{print $8}'
}
for round in $(seq "$ROUNDS"); do
  W=$(mktemp -d "$BASE/evfs-rekey.XXXXXX"); mkdir "$W/mnt"; export EVFS_STORE=$W/store
  $CTL init --keyfile "$W/k" >/dev/null; $CTL kms grant >/dev/null
  $CTL volume create v --size 1G --encrypt >/dev/null
  $EVFS "$EVFS_STORE" "$W/mnt"; for _ in $(seq 100); do mountpoint -q "$W/mnt" && break; sleep 0.05; done
  $CTL attach v >/dev/null
  head -c "$WRITTEN" /dev/urandom | dd of="$W/mnt/volumes/v" bs=1M conv=notrunc,fsync status=none
  $CTL snapshot create v s >/dev/null
  t0=$(now); out=$($CTL volume rekey v); t1=$(now)
  n=$(echo "$out" | sed 's/.*, \([0-9]*\) chunks.*/\1/')
  rate=$(echo "$n $t0 $t1" | awk '{printf "%.0f", $1 * 4096 / 1e6 / ($3 - $2)}')
  secs=$(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}')
  idle=$(reads 4)
  # Reads while a rekey runs: the rekey first, fio for about as long.
  $CTL volume rekey v >/dev/null & rk=$!
  busy=$(reads "$(echo "$secs" | awk '{print ($1 < 2) ? 2 : int($1)}')")
  wait $rk
  printf "round %s: rekey %s MB/s (%s chunks re-encrypted in %s s); rand read 4k x2: idle %s IOPS, during a rekey %s IOPS (%s)\n" \
    "$round" "$rate" "$n" "$secs" "$idle" "$busy" "$(echo "$busy $idle" | awk '{printf "%.2f", $1 / $2}')"
  fusermount3 -u "$W/mnt"; while pgrep -f "evfs $EVFS_STORE" >/dev/null; do sleep 0.05; done
  rm -rf "$W"; W=
done
