#!/usr/bin/env bash
# Side-by-side benchmark of evfs and its peers on the same disk, in one run:
#   systems  evfs (an encrypted volume file), gocryptfs, securefs, qemu-luks (a
#            LUKS1 image exported as a file by qemu-storage-daemon's FUSE
#            export) and raw (the backing file itself: no encryption, the ceiling)
#   rows     fio psync: sequential write 1 MiB (end_fsync) and cold read 1 MiB
#            (MB/s), random read and write 4 KiB with 1 and 2 jobs (IOPS);
#            ext4 on a loop device over the file: write SIZE/2 with fsync and
#            read it cold (MB/s), `cp -a /usr/include` + syncfs (seconds);
#            the daemon's CPU (utime+stime of its /proc/PID/stat) per GiB moved
#            by the sequential write and the cold read
# The systems run in turn each round (every one set up fresh and torn down);
# the table shows the MEDIAN of ROUNDS rounds per cell, the best encrypted
# peer of each row, evfs/best peer and evfs/raw (compare ratios, not absolute
# numbers: see ../shared/PEERS.md).  Page cache is dropped before every read
# test and before each random test.  A peer whose program is missing (or
# that cannot be set up here) is SKIPPED.  Then times snapshot creation of a
# 100 GiB thin volume vs a 1 GiB one with the same 64 MiB written (R24).
#   usage: sudo tests/bench/bench.sh [DIR]   (DIR: where the stores live; default /var/tmp)
#   env: SIZE (file size, default 1G; >= 256M for the cp row), RUNTIME (random
#        tests, seconds, default 20), ROUNDS (default 3), ONLY=snap (R24 part only),
#        SYSTEMS (default "evfs gocryptfs securefs qemu-luks raw"; evfs always)
#   packages: fio, gocryptfs, securefs, cryptsetup-bin + qemu-system-common
#   (qemu-storage-daemon), e2fsprogs; exit 1 if a measurement failed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/e2e/json.sh"   # jget
EVFS=${EVFS_BIN:-$ROOT/build/fs/fuse/evfs} CTL=${EVFSCTL_BIN:-$ROOT/build/cli/evfsctl}
BASE=${1:-/var/tmp}; SIZE=${SIZE:-1G}; RUNTIME=${RUNTIME:-20}; ROUNDS=${ROUNDS:-3}
command -v fio >/dev/null || { echo "bench: install fio"; exit 1; }
[ -x "$EVFS" ] && [ -x "$CTL" ] || { echo "bench: build evfs first ($EVFS, $CTL)"; exit 1; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench: ROUNDS must be a positive integer"; exit 1; }
bytes=$(numfmt --from=iec "$SIZE")
ext_bytes=$(( bytes / 2 / 1048576 * 1048576 ))     # written into the ext4 on the loop device
HZ=$(getconf CLK_TCK)
W=$(mktemp -d "$BASE/evfs-bench.XXXXXX")

# The system under test: what teardown undoes.  Only what this script made.
S_DIR="" S_MNT="" S_PID="" S_KILL=0 S_LOOP="" S_EXT="" TARGET=""
ours() { [ -n "$1" ] && tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qF "$W/"; }
teardown() {
  local rc=0 i
  if [ -n "$S_EXT" ] && mountpoint -q "$S_EXT"; then umount "$S_EXT" 2>/dev/null || umount -l "$S_EXT" || rc=1; fi
  if [ -n "$S_LOOP" ]; then losetup -d "$S_LOOP" || rc=1; fi
  # qemu-storage-daemon unmounts its export when it quits; the others quit when unmounted
  if [ "$S_KILL" = 1 ] && ours "$S_PID"; then
    kill -TERM "$S_PID" 2>/dev/null; for i in $(seq 100); do ours "$S_PID" || break; sleep 0.05; done
  fi
  if [ -n "$S_MNT" ] && mountpoint -q "$S_MNT"; then fusermount3 -u "$S_MNT" 2>/dev/null || umount -l "$S_MNT" || rc=1; fi
  for i in $(seq 200); do ours "$S_PID" || break; sleep 0.05; done
  if ours "$S_PID"; then kill -TERM "$S_PID"; sleep 1; ours "$S_PID" && kill -KILL "$S_PID"; fi
  if [ -n "$S_DIR" ] && ! grep -qF " $S_DIR/" /proc/self/mounts; then rm -rf "$S_DIR"; fi
  S_DIR="" S_MNT="" S_PID="" S_KILL=0 S_LOOP="" S_EXT="" TARGET=""
  return $rc
}
cleanup() {
  set +e; teardown
  if grep -qF " $W/" /proc/self/mounts; then echo "bench: still mounted under $W, not removed" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM
wait_mounted() { # PATH [PID]: up to 10 s, and the daemon must still be alive
  local i; for i in $(seq 200); do
    mountpoint -q "$1" && return 0
    [ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05; done; return 1
}

# Setup of each system: fresh in S_DIR, sets TARGET (the file to benchmark)
# and S_PID (the daemon, if any).  Returns 1 on failure (the log is in S_DIR).
setup_evfs() {
  S_DIR=$W/evfs; mkdir -p "$S_DIR/mnt"; export EVFS_STORE=$S_DIR/store
  $CTL init --keyfile "$S_DIR/root.key" >/dev/null && $CTL kms grant >/dev/null &&
    $CTL volume create bench --size "$SIZE" --encrypt >/dev/null || return 1
  $EVFS "$EVFS_STORE" "$S_DIR/mnt" || return 1
  S_MNT=$S_DIR/mnt; wait_mounted "$S_MNT" || return 1
  S_PID=$($CTL --json status | jget pid) || return 1
  ours "$S_PID" || { S_PID=""; return 1; }
  $CTL attach bench >/dev/null || return 1
  TARGET=$S_MNT/volumes/bench
}
setup_gocryptfs() {
  S_DIR=$W/gocryptfs; mkdir -p "$S_DIR/raw" "$S_DIR/mnt"; echo pw >"$S_DIR/pw"
  gocryptfs -q -init -scryptn 10 -passfile "$S_DIR/pw" "$S_DIR/raw" >/dev/null 2>"$S_DIR/log" || return 1
  gocryptfs -fg -q -passfile "$S_DIR/pw" "$S_DIR/raw" "$S_DIR/mnt" >>"$S_DIR/log" 2>&1 &
  S_PID=$! S_MNT=$S_DIR/mnt; wait_mounted "$S_MNT" "$S_PID" || return 1
  TARGET=$S_MNT/file; truncate -s "$SIZE" "$TARGET"
}
setup_securefs() {
  S_DIR=$W/securefs; mkdir -p "$S_DIR/raw" "$S_DIR/mnt"
  securefs create --pass pw -r 1 --pbkdf pkcs5-pbkdf2-hmac-sha256 "$S_DIR/raw" >"$S_DIR/log" 2>&1 || return 1
  securefs mount --pass pw "$S_DIR/raw" "$S_DIR/mnt" >>"$S_DIR/log" 2>&1 &
  S_PID=$! S_MNT=$S_DIR/mnt; wait_mounted "$S_MNT" "$S_PID" || return 1
  TARGET=$S_MNT/file; truncate -s "$SIZE" "$TARGET"
}
setup_qemu_luks() { # LUKS1 image 16 MiB larger than SIZE (header + payload offset), exported as a file
  S_DIR=$W/qemu-luks; mkdir -p "$S_DIR"; printf pw >"$S_DIR/pw"
  truncate -s $(( bytes + 16 * 1048576 )) "$S_DIR/luks.img"
  cryptsetup luksFormat --type luks1 --batch-mode --key-file "$S_DIR/pw" --pbkdf-force-iterations 1000 \
    "$S_DIR/luks.img" >"$S_DIR/log" 2>&1 || return 1
  touch "$S_DIR/export"
  qemu-storage-daemon --object secret,id=sec0,data=pw \
    --blockdev "driver=file,filename=$S_DIR/luks.img,node-name=f" \
    --blockdev driver=luks,file=f,key-secret=sec0,node-name=l \
    --export "type=fuse,id=e,node-name=l,mountpoint=$S_DIR/export,writable=on" >>"$S_DIR/log" 2>&1 &
  S_PID=$! S_KILL=1 S_MNT=$S_DIR/export; wait_mounted "$S_MNT" "$S_PID" || return 1
  TARGET=$S_MNT
}
setup_raw() { S_DIR=$W/raw; mkdir -p "$S_DIR"; TARGET=$S_DIR/raw.img; truncate -s "$SIZE" "$TARGET"; }

# Measurements
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
fiorun() { # FILE SIZE job-args... -> terse v3 line (empty on failure)
  fio --output-format=terse --terse-version=3 --name=b --filename="$1" --ioengine=psync \
    --size="$2" "${@:3}" 2>>"$W/fio.log" || echo "bench: fio failed on $1 ($*)" >&2
}
field() { awk -F';' -v i="$2" -v d="$3" 'NF >= i && $i != "" { printf "%.2f", $i / d; ok = 1 } END { if (!ok) print "ERR" }' <<<"$1"; }
ticks() { # utime + stime of the daemon (all its threads), in clock ticks; - if none
  local st; if [ -n "$S_PID" ] && st=$(cat "/proc/$S_PID/stat" 2>/dev/null); then
    sed 's/.*) //' <<<"$st" | awk '{ print $12 + $13 }'; else echo -; fi
}
per_gib() { # TICKS0 TICKS1 BYTES -> CPU seconds per GiB
  [ "$1" = - ] || [ "$2" = - ] && { echo -; return; }
  awk -v a="$1" -v b="$2" -v hz="$HZ" -v n="$3" 'BEGIN { printf "%.3f", (b - a) / hz / (n / 1073741824) }'
}
declare -A V          # V[system,row] = the values of the rounds
FAILED=() NOTES=()
rec() { V[$1,$2]+="$3 "; [ "$3" != ERR ] || FAILED+=("$1 round $ROUND: $2"); }
ext4_up() {
  S_LOOP=$(losetup -f --show "$TARGET") || { S_LOOP=""; return 1; }
  mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "$S_LOOP" >>"$S_DIR/log" 2>&1 || return 1
  mkdir -p "$S_DIR/ext4" && mount "$S_LOOP" "$S_DIR/ext4" && S_EXT=$S_DIR/ext4
}
measure() { # SYSTEM: every row on TARGET
  local n=$1 o t0 t1 j s e
  t0=$(ticks); o=$(fiorun "$TARGET" "$bytes" --rw=write --bs=1M --end_fsync=1); t1=$(ticks)
  rec "$n" sw "$(field "$o" 48 1024)"; rec "$n" cw "$(per_gib "$t0" "$t1" "$bytes")"
  drop
  t0=$(ticks); o=$(fiorun "$TARGET" "$bytes" --rw=read --bs=1M); t1=$(ticks)
  rec "$n" sr "$(field "$o" 7 1024)"; rec "$n" cr "$(per_gib "$t0" "$t1" "$bytes")"
  for j in 1 2; do
    drop; o=$(fiorun "$TARGET" "$bytes" --rw=randread --bs=4k --time_based --runtime="$RUNTIME" --numjobs=$j --group_reporting)
    rec "$n" rr$j "$(field "$o" 8 1)"
    drop; o=$(fiorun "$TARGET" "$bytes" --rw=randwrite --bs=4k --time_based --runtime="$RUNTIME" --numjobs=$j --group_reporting)
    rec "$n" rw$j "$(field "$o" 49 1)"
  done
  drop
  if ! ext4_up; then
    echo "bench: $n: no ext4 on a loop device over $TARGET (see $S_DIR/log)" >&2
    rec "$n" ew ERR; rec "$n" er ERR; rec "$n" cp ERR; return 0
  fi
  o=$(fiorun "$S_EXT/f" "$ext_bytes" --rw=write --bs=1M --end_fsync=1); rec "$n" ew "$(field "$o" 48 1024)"
  drop
  o=$(fiorun "$S_EXT/f" "$ext_bytes" --rw=read --bs=1M); rec "$n" er "$(field "$o" 7 1024)"
  rm -f "$S_EXT/f"; sync -f "$S_EXT"
  tar -cf - /usr/include 2>/dev/null | cat >/dev/null      # the source warm: time the destination
  s=$(date +%s%N)
  if cp -a /usr/include "$S_EXT/inc" && sync -f "$S_EXT"; then
    e=$(date +%s%N); rec "$n" cp "$(awk -v d=$((e - s)) 'BEGIN { printf "%.2f", d / 1e9 }')"
  else rec "$n" cp ERR; fi
  umount "$S_EXT"; S_EXT=""
  e2fsck -fn "$S_LOOP" >"$S_DIR/fsck.log" 2>&1 || NOTES+=("$n round $ROUND: e2fsck -fn of the ext4 over the file is not clean")
  losetup -d "$S_LOOP"; S_LOOP=""
}

read -r -a SYSTEMS <<<"${SYSTEMS:-evfs gocryptfs securefs qemu-luks raw}"   # env SYSTEMS: a subset
declare -A SKIP
command -v gocryptfs >/dev/null || SKIP[gocryptfs]="gocryptfs not installed"
command -v securefs >/dev/null || SKIP[securefs]="securefs not installed"
command -v qemu-storage-daemon >/dev/null || SKIP[qemu-luks]="qemu-storage-daemon not installed"
command -v cryptsetup >/dev/null || SKIP[qemu-luks]="cryptsetup not installed"
if [ "${ONLY:-}" != snap ]; then
  for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    for n in "${SYSTEMS[@]}"; do
      [ -z "${SKIP[$n]:-}" ] || continue
      echo "bench: round $ROUND/$ROUNDS: $n" >&2
      if ! "setup_${n//-/_}"; then
        log=$(tail -n 3 "$S_DIR/log" 2>/dev/null | tr '\n' ' ')
        teardown || true
        [ "$n" != evfs ] || { echo "bench: evfs setup failed: $log" >&2; exit 1; }
        SKIP[$n]="setup failed in round $ROUND: $log"; continue
      fi
      measure "$n"
      teardown || NOTES+=("$n round $ROUND: teardown was not clean")
    done
  done
  ROWS=(sw sr rr1 rr2 rw1 rw2 ew er cp cw cr)
  declare -A LABEL=([sw]="seq write 1M" [sr]="seq read 1M cold" [rr1]="rand read 4K x1" [rr2]="rand read 4K x2"
    [rw1]="rand write 4K x1" [rw2]="rand write 4K x2" [ew]="ext4/loop write" [er]="ext4/loop read cold"
    [cp]="ext4: cp -a /usr/include" [cw]="CPU s/GiB seq write" [cr]="CPU s/GiB read cold")
  declare -A UNIT=([sw]=MB/s [sr]=MB/s [rr1]=IOPS [rr2]=IOPS [rw1]=IOPS [rw2]=IOPS [ew]=MB/s [er]=MB/s [cp]=s [cw]=s/GiB [cr]=s/GiB)
  median() { tr ' ' '\n' | { grep -E '^[0-9.]+$' || true; } | sort -g |
    awk '{ a[NR] = $1 } END { if (!NR) { print "-"; exit } print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
  fmt() { case $1 in -|ERR) echo "$1";; *) awk -v v="$1" -v p="$2" 'BEGIN { printf "%.*f", p, v }';; esac; }
  echo "SIZE=$SIZE RUNTIME=${RUNTIME}s: median of $ROUNDS round(s); ext4/loop rows write $((ext_bytes >> 20)) MiB; dir $BASE"
  printf "%-25s %6s" row unit; for n in "${SYSTEMS[@]}"; do printf " %10s" "$n"; done
  printf " %10s %10s %9s\n" "best peer" "evfs/best" "evfs/raw"
  for r in "${ROWS[@]}"; do
    case ${UNIT[$r]} in s|s/GiB) lower=1 prec=2;; *) lower=0 prec=0;; esac
    [ "${UNIT[$r]}" = s/GiB ] && prec=3
    declare -A M=(); best="" bestv=""
    for n in "${SYSTEMS[@]}"; do
      if [ -n "${SKIP[$n]:-}" ]; then M[$n]=SKIPPED; continue; fi
      M[$n]=$(printf '%s' "${V[$n,$r]:-}" | median)
      [[ ${M[$n]} == - && ${V[$n,$r]:-} == *ERR* ]] && M[$n]=ERR
      [[ $n == evfs || $n == raw || ${M[$n]} == - || ${M[$n]} == ERR ]] && continue
      if [ -z "$bestv" ] || awk -v a="${M[$n]}" -v b="$bestv" -v l=$lower 'BEGIN { exit !(l ? a < b : a > b) }'; then
        best=$n bestv=${M[$n]}; fi
    done
    ratio() { if ! [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]]; then echo -;
      else awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; fi; }
    printf "%-25s %6s" "${LABEL[$r]}" "${UNIT[$r]}"
    for n in "${SYSTEMS[@]}"; do
      case ${M[$n]} in SKIPPED|-|ERR) printf " %10s" "${M[$n]}";; *) printf " %10s" "$(fmt "${M[$n]}" $prec)";; esac
    done
    printf " %10s %10s %9s\n" "${best:--}" "$(ratio "${M[evfs]}" "$bestv")" "$(ratio "${M[evfs]}" "${M[raw]:-}")"
    unset M
  done
  echo "ratios are evfs/other: above 1 is better for MB/s and IOPS, below 1 is better for s and s/GiB;"
  echo "best peer = the best encrypted peer of the row (raw excluded); CPU = the daemon's utime+stime per GiB"
  for n in "${SYSTEMS[@]}"; do [ -z "${SKIP[$n]:-}" ] || echo "$n: SKIPPED (${SKIP[$n]})"; done
  for x in "${NOTES[@]+"${NOTES[@]}"}"; do echo "note: $x"; done
  for x in "${FAILED[@]+"${FAILED[@]}"}"; do echo "FAILED: $x"; done
fi

# The snapshot part runs on an evfs mount of its own at $W/mnt.
mkdir -p "$W/mnt"
export EVFS_STORE=$W/store
$CTL init --keyfile "$W/root.key" >/dev/null; $CTL kms grant >/dev/null
$EVFS "$EVFS_STORE" "$W/mnt"; S_MNT=$W/mnt; wait_mounted "$S_MNT"
S_PID=$($CTL --json status | jget pid); ours "$S_PID" || S_PID=""
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
  kib=$(du -sk --exclude=data "$EVFS_STORE/pools/$lin" | cut -f1)     # the pool's metadata: map trees, journal
  printf "snapshot of a %4s thin volume with 64 MiB written: median %6.1f ms, pool metadata (volume + 5 snapshots) %s KiB\n" \
    "$sz" "$(echo "${SN[$sz]}" | awk '{print $1/1000}')" "$kib"
done
awk -v a="${SN[100G]}" -v b="${SN[1G]}" 'BEGIN{printf "snapshot time 100G/1G: %.2f (R24: about 1)\n", a/b}'
[ ${#FAILED[@]} = 0 ]
