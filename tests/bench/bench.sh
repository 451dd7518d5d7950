#!/usr/bin/env bash
# Side-by-side fio benchmark: evfs volume file vs gocryptfs file vs a
# passthrough-free raw file, same disk, one run; prints MB/s, IOPS and the
# ratios evfs/gocryptfs and evfs/raw (compare ratios, not absolute numbers:
# see ../shared/PEERS.md).  Also times snapshot creation of a 100 GiB thin
# volume vs a 1 GiB one with the same 64 MiB written (R24).
#   usage: sudo tests/bench/bench.sh [DIR]   (DIR: where the stores live; default /var/tmp)
#   env: SIZE (file size, default 1G), RUNTIME (random tests, default 20), ONLY=snap (R24 part only)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/e2e/json.sh"   # jget
EVFS=${EVFS_BIN:-$ROOT/build/fs/fuse/evfs} CTL=${EVFSCTL_BIN:-$ROOT/build/cli/evfsctl}
BASE=${1:-/var/tmp}; SIZE=${SIZE:-1G}; RUNTIME=${RUNTIME:-20}
command -v fio >/dev/null || { echo "bench: install fio"; exit 1; }
W=$(mktemp -d "$BASE/evfs-bench.XXXXXX")
cleanup() { set +e; for m in "$W/mnt" "$W/gmnt"; do mountpoint -q "$m" && { fusermount3 -u "$m" || umount -l "$m"; }; done; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/mnt" "$W/graw" "$W/gmnt"
export EVFS_STORE=$W/store
$CTL init --keyfile "$W/root.key" >/dev/null; $CTL kms grant >/dev/null
bytes=$(numfmt --from=iec "$SIZE")
$CTL volume create bench --size "$SIZE" --encrypt >/dev/null
$EVFS "$EVFS_STORE" "$W/mnt"; $CTL attach bench >/dev/null
targets=("evfs=$W/mnt/volumes/bench" "raw=$W/raw.img")
truncate -s "$SIZE" "$W/raw.img"
if command -v gocryptfs >/dev/null; then
  echo pw > "$W/pw"; gocryptfs -q -init -passfile "$W/pw" "$W/graw" >/dev/null
  gocryptfs -q -passfile "$W/pw" "$W/graw" "$W/gmnt"; truncate -s "$SIZE" "$W/gmnt/file"
  targets+=("gocryptfs=$W/gmnt/file")
fi
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
run() { # name file job-args... -> prints bw(MB/s) or iops
  local out; out=$(fio --output-format=terse --terse-version=3 --name=b --filename="$2" --ioengine=psync \
    --size="$bytes" "${@:3}" 2>/dev/null)
  echo "$out"
}
declare -A R
[ "${ONLY:-}" = snap ] && targets=()
for t in "${targets[@]+"${targets[@]}"}"; do
  n=${t%%=*} f=${t#*=}
  o=$(run "$n" "$f" --rw=write --bs=1M --end_fsync=1); R[$n,sw]=$(echo "$o" | awk -F';' '{printf "%.0f", $48/1024}')
  drop
  o=$(run "$n" "$f" --rw=read --bs=1M); R[$n,sr]=$(echo "$o" | awk -F';' '{printf "%.0f", $7/1024}')
  for j in 1 2; do
    o=$(run "$n" "$f" --rw=randread --bs=4k --time_based --runtime="$RUNTIME" --numjobs=$j --group_reporting)
    R[$n,rr$j]=$(echo "$o" | awk -F';' '{print $8}')
    o=$(run "$n" "$f" --rw=randwrite --bs=4k --time_based --runtime="$RUNTIME" --numjobs=$j --group_reporting)
    R[$n,rw$j]=$(echo "$o" | awk -F';' '{print $49}')
  done
done
cols=(sw sr rr1 rr2 rw1 rw2)
printf "%-12s %10s %10s %12s %12s %12s %12s\n" system "seqW MB/s" "seqR MB/s" "rr4k x1" "rr4k x2" "rw4k x1" "rw4k x2"
for t in "${targets[@]+"${targets[@]}"}"; do n=${t%%=*}
  printf "%-12s" "$n"; for c in "${cols[@]}"; do printf " %10s " "${R[$n,$c]}"; done; echo; done
for peer in gocryptfs raw; do
  [ -n "${R[$peer,sw]:-}" ] || continue
  printf "%-12s" "evfs/$peer"
  for c in "${cols[@]}"; do awk -v a="${R[evfs,$c]}" -v b="${R[$peer,$c]}" 'BEGIN{printf " %10.2f ", (b>0? a/b : 0)}'; done; echo
done
# R24: snapshot cost does not follow the nominal size: median of 5 snapshots
# (after a sync, so the first one does not pay for flushing the 64 MiB) and
# the space each snapshot's map takes.
declare -A SN
for sz in 1G 100G; do
  $CTL volume create "thin$sz" --size "$sz" --encrypt >/dev/null; $CTL attach "thin$sz" >/dev/null
  dd if=/dev/urandom of="$W/mnt/volumes/thin$sz" bs=1M count=64 conv=notrunc,fsync status=none; sync
  ts=()
  for i in 1 2 3 4 5; do
    s=$(date +%s%N); $CTL snapshot create "thin$sz" "snap$sz.$i" >/dev/null; e=$(date +%s%N)
    ts+=($(( (e - s) / 1000 )))
  done
  SN[$sz]=$(printf '%s\n' "${ts[@]}" | sort -n | sed -n 3p)
  lin=$($CTL --json snapshot show "snap$sz.1" | jget lineage)
  kib=$(du -k "$EVFS_STORE/pools/$lin/maps" | cut -f1)
  printf "snapshot of a %4s thin volume with 64 MiB written: median %6.1f ms, maps of volume + 5 snapshots %s KiB on disk\n" \
    "$sz" "$(echo "${SN[$sz]}" | awk '{print $1/1000}')" "$kib"
done
awk -v a="${SN[100G]}" -v b="${SN[1G]}" 'BEGIN{printf "snapshot time 100G/1G: %.2f (R24: about 1)\n", a/b}'
