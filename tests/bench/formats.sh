#!/usr/bin/env bash
# Pool format 1 against format 2 on the data path, in one run: an encrypted
# 1 GiB volume in a fresh store per system and round, fio psync rows
# (sequential write 1 MiB with end_fsync, MB/s; random write 4 KiB, without
# and with fsync per write, IOPS; random read 4 KiB cold with 2 jobs, IOPS).
# The formats run in turn each round; compare the medians over ROUNDS (the
# machines are noisy).  Not a test: it prints one line per round and format.
#   usage: sudo tests/bench/formats.sh [DIR]   (default /var/tmp)
#   env: ROUNDS (default 3), RUNTIME (random rows, seconds, default 8),
#        SYSTEMS (default "1=1:build 2=2:build"): each LABEL=FORMAT:BUILD_DIR
#        (relative to the checkout, or absolute), so two builds can run side
#        by side, e.g. before and after a change to format 2:
#        SYSTEMS="before=2:/tmp/old/build after=2:build"
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${1:-/var/tmp}; ROUNDS=${ROUNDS:-3}; RT=${RUNTIME:-8}
SYSTEMS=${SYSTEMS:-"1=1:build 2=2:build"}
W=
cleanup() { set +e; [ -n "$W" ] || return 0; mountpoint -q "$W/mnt" && { fusermount3 -u "$W/mnt" || umount -l "$W/mnt"; }; rm -rf "$W"; }
trap cleanup EXIT
terse() { fio --output-format=terse --terse-version=3 --filename="$F" --size=512M --ioengine=psync "$@"; }
for round in $(seq "$ROUNDS"); do
  for sys in $SYSTEMS; do
    label=${sys%%=*} fmt=${sys#*=}; dir=${fmt#*:} fmt=${fmt%%:*}
    case $dir in /*) ;; *) dir=$ROOT/$dir ;; esac
    EVFS=$dir/fs/fuse/evfs CTL=$dir/cli/evfsctl
    [ -x "$EVFS" ] && [ -x "$CTL" ] || { echo "formats.sh: no evfs/evfsctl in $dir (build it first)" >&2; exit 2; }
    W=$(mktemp -d "$BASE/evfs-formats.XXXXXX"); mkdir "$W/mnt"; export EVFS_STORE=$W/store
    $CTL init --keyfile "$W/k" >/dev/null; $CTL kms grant >/dev/null
    sed -i "s/^pool_format =.*/pool_format = $fmt/" "$EVFS_STORE/evfs.ini"
    $CTL volume create v --size 1G --encrypt >/dev/null
    $EVFS "$EVFS_STORE" "$W/mnt"; for _ in $(seq 100); do mountpoint -q "$W/mnt" && break; sleep 0.05; done
    $CTL attach v >/dev/null
    F=$W/mnt/volumes/v
    sw=$(terse --name=sw --rw=write --bs=1M --end_fsync=1 | awk -F';' '{printf "%.0f", $48 / 1024}')
    rw=$(terse --name=rw --rw=randwrite --bs=4k --runtime="$RT" --time_based | awk -F';' '{print $49}')
    rwf=$(terse --name=rwf --rw=randwrite --bs=4k --fsync=1 --runtime="$RT" --time_based | awk -F';' '{print $49}')
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    rr=$(terse --name=rr --rw=randread --bs=4k --runtime="$RT" --time_based --numjobs=2 --group_reporting |
      awk -F';' '{print $8}')
    printf "round %s %s (format %s): seq write %s MB/s, rand write 4k %s IOPS, rand write 4k+fsync %s IOPS, rand read 4k x2 %s IOPS\n" \
      "$round" "$label" "$fmt" "$sw" "$rw" "$rwf" "$rr"
    fusermount3 -u "$W/mnt"; while pgrep -f "evfs $EVFS_STORE" >/dev/null; do sleep 0.05; done
    rm -rf "$W"; W=
  done
done
