#!/usr/bin/env bash
# Concurrency stress on a live mount: fio (4 jobs, 4 KiB and 64 KiB blocks,
# random read/write, crc32c verify) on volume v1 while a loop takes
# snapshots and backups of v1 and deletes the older ones, and another loop
# attaches and detaches (--force: it is open, R35) volume v2 under a writer/reader of its own.  No fio
# error or verify failure, no hang (everything runs under timeout), I/O on
# v2 while detached fails with ENOKEY and never returns wrong data, v2
# verifies after the last attach, and every snapshot and the volume pass
# fsck and read back whole.
. "$(dirname "$0")/lib.sh"
command -v fio >/dev/null || { echo "SKIPPED: fio is not installed" >&2; exit 77; }
RUN=${EVFS_STRESS_SECONDS:-20}
new_store
ctl volume create v1 --size 256M --encrypt >/dev/null
ctl volume create v2 --size 64M --encrypt >/dev/null
mnt
ctl attach v1 >/dev/null
ctl attach v2 >/dev/null
V1=$MNT/volumes/v1 V2=$MNT/volumes/v2
# Any evfsctl call stuck for 60 s is a hang.
c() { timeout 60 "$EVFSCTL_BIN" "$@"; }
END=$(( $(date +%s) + RUN ))

# fio: four jobs on disjoint 48 MiB regions of v1, two with 4 KiB blocks,
# two with 64 KiB; verify=crc32c checks every block read back.
cat >"$T/v1.fio" <<EOF
[global]
filename=$V1
ioengine=psync
direct=1
rw=randrw
rwmixread=40
size=48M
offset_increment=64M
numjobs=2
time_based=1
runtime=$RUN
verify=crc32c
verify_fatal=1
do_verify=1
verify_backlog=512
verify_state_save=0
group_reporting=1
[small]
bs=4k
offset=0
[large]
bs=64k
offset=128M
EOF
timeout $((RUN + 120)) fio --output="$T/fio.out" "$T/v1.fio" >/dev/null 2>"$T/fio.err" &
FIO=$!

# Snapshots and backups of v1 under I/O, older ones deleted.
(
  set -e; i=0
  while [ "$(date +%s)" -lt "$END" ]; do
    i=$((i + 1))
    c snapshot create v1 "s$i" >/dev/null
    if [ $((i % 3)) = 1 ]; then c backup create v1 "b$i" >/dev/null; fi
    [ $i -le 2 ] || c snapshot delete "s$((i - 2))" >/dev/null
    [ $((i % 3)) != 1 ] || [ $i -le 4 ] || c backup delete "b$((i - 6))" >/dev/null
  done
  echo "$i" >"$T/snaps"
) >"$T/snap.log" 2>&1 &
SNAP=$!

# v2: attach / detach every ~0.3 s.
(
  set -e; n=0
  while [ "$(date +%s)" -lt "$END" ]; do
    c detach v2 --force >/dev/null 2>&1; sleep 0.$((RANDOM % 4))
    c attach v2 >/dev/null; sleep 0.$((RANDOM % 4)); n=$((n + 1))
  done
  echo "$n" >"$T/cycles"
) >"$T/attach.log" 2>&1 &
ATT=$!

# I/O on v2: O_DIRECT writes and reads of 4 KiB and 64 KiB blocks against
# an exact model; every failure must be ENOKEY and leave the block as it was.
timeout $((RUN + 120)) python3 - "$V2" "$END" "$T/v2.model" >"$T/v2.log" 2>&1 <<'PY' &
import errno, mmap, os, random, sys, time
path, end, model_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
size, rnd = 64 << 20, random.Random(5)
fd = os.open(path, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 65536)
model = {}                     # 4 KiB block index -> seed of its content (absent: zeros)
def content(seed, n):
    return random.Random(seed).randbytes(n)
def expect(off, n):
    return b"".join(content(model[b], 4096) if b in model else bytes(4096) for b in range(off // 4096, (off + n) // 4096))
ok = {"w": 0, "r": 0}; nokey = {"w": 0, "r": 0}; seed = 0
while time.time() < end:
    n = rnd.choice([4096, 65536]); off = rnd.randrange(0, size // n) * n
    if rnd.random() < 0.5:
        seed += 1
        data = b"".join(content(seed * 16 + i, 4096) for i in range(n // 4096))
        buf[:n] = data
        try:
            w = os.pwritev(fd, [memoryview(buf)[:n]], off)
        except OSError as e:
            if e.errno != errno.ENOKEY:
                sys.exit(f"write at {off}: {e} (want ENOKEY)")
            nokey["w"] += 1
            continue
        if w != n:
            sys.exit(f"short write {w} at {off}")
        for i in range(n // 4096):
            model[off // 4096 + i] = seed * 16 + i
        ok["w"] += 1
    else:
        try:
            r = os.preadv(fd, [memoryview(buf)[:n]], off)
        except OSError as e:
            if e.errno != errno.ENOKEY:
                sys.exit(f"read at {off}: {e} (want ENOKEY)")
            nokey["r"] += 1
            continue
        if r != n or buf[:n] != expect(off, n):
            sys.exit(f"read at {off} (+{n}) returned wrong data")
        ok["r"] += 1
with open(model_path, "w") as f:
    f.write(repr(model))
print(f"v2: {ok['w']} writes and {ok['r']} reads ok, {nokey['w']} writes and {nokey['r']} reads refused with ENOKEY")
if not (nokey["w"] + nokey["r"]) or not (ok["w"] and ok["r"]):
    sys.exit("v2 I/O never saw both an attached and a detached volume")
PY
IO2=$!

rc=0
wait $FIO || rc=$?
[ $rc = 0 ] || die "fio failed (exit $rc): $(tail -20 "$T/fio.err") $(grep -iE "err|verify" "$T/fio.out" | head)"
wait $SNAP || die "snapshot/backup loop failed: $(tail -5 "$T/snap.log")"
wait $ATT || die "attach/detach loop failed: $(tail -5 "$T/attach.log")"
wait $IO2 || die "v2 I/O: $(tail -5 "$T/v2.log")"
grep -q "err= 0" "$T/fio.out" || die "fio reported errors: $(grep err= "$T/fio.out")"
! grep -qi "verify.*fail\|bad magic\|crc32c.*mismatch" "$T/fio.out" "$T/fio.err" || die "fio verify failures"
ok "fio randrw 4k+64k x4 with crc32c verify for ${RUN}s: no error ($(grep -oE '(READ|WRITE): bw=[^,]*' "$T/fio.out" | tr '\n' ' '))"
ok "$(cat "$T/snaps") snapshot rounds (backups every third) under I/O; $(cat "$T/cycles") detach/attach cycles of v2"
ok "$(cat "$T/v2.log")"

# v2 after its last attach: the whole model verifies.
python3 - "$V2" "$T/v2.model" <<'PY' || die "v2 data after the last attach"
import ast, random, sys
model = ast.literal_eval(open(sys.argv[2]).read())
with open(sys.argv[1], "rb") as f:
    data = f.read()
for b in range(len(data) // 4096):
    want = random.Random(model[b]).randbytes(4096) if b in model else bytes(4096)
    if data[b * 4096:(b + 1) * 4096] != want:
        sys.exit(f"block {b} of v2 differs from the model")
PY
ok "v2 reads back exactly what was acknowledged, after $(cat "$T/cycles") detach/attach cycles"

# Every remaining snapshot and backup, and the volume, are consistent.
snaps=$(c snapshot list | awk 'NR > 1 {print $1}')
[ -n "$snaps" ] || die "no snapshots left"
for s in $snaps v1 v2; do
  c fsck "$s" >"$T/fsck" 2>&1 || die "fsck $s: $(cat "$T/fsck")"
  grep -q "0 bad chunk" "$T/fsck" || die "fsck $s: $(cat "$T/fsck")"
done
for s in $snaps; do timeout 60 dd if="$MNT/snapshots/$s" of=/dev/null bs=1M status=none || die "snapshot $s unreadable"; done
for b in $(c backup list | awk 'NR > 1 {print $1}'); do
  c backup verify "$b" >/dev/null 2>"$T/err" || die "backup $b: $(cat "$T/err")"
done
ok "snapshots ($(echo $snaps | wc -w)), backups, v1 and v2 pass fsck / verify and read back whole"
# The newest snapshot is a point-in-time image of fio's blocks: each one is
# unwritten (zeros) or a whole fio block (verify header with its own offset).
last=$(echo "$snaps" | tail -1)
python3 - "$MNT/snapshots/$last" <<'PY' || die "snapshot $last is not a consistent image"
import struct, sys
f = open(sys.argv[1], "rb"); blocks = 0
for base, bs in ((0, 4096), (64 << 20, 4096), (128 << 20, 65536), (192 << 20, 65536)):
    f.seek(base); region = f.read(48 << 20)
    for o in range(0, len(region), bs):
        b = region[o:o + bs]
        if b.count(0) == bs:
            continue
        magic, _, ln, _, off = struct.unpack_from("<HHIQQ", b)
        if magic != 0xacca or ln != bs or off != base + o:
            sys.exit(f"block at {base + o}: magic {magic:#x} len {ln} offset {off}")
        blocks += 1
print(f"{blocks} fio blocks intact")
PY
ok "the last snapshot ($last) holds whole fio blocks at their offsets (a point-in-time image)"
umnt
finish
