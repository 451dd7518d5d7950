#!/usr/bin/env bash
# Full disk: the store (pools, catalog, kms, backup_dir) on a 64 MiB ext4
# filesystem holding a 256 MiB thin encrypted volume.  Writes past the free
# space fail with ENOSPC (never EIO, never a silent success), data written
# and fsynced before reads back identical, a failed write leaves its chunks
# as they were, the volume stays readable; evfsctl commands that need space
# fail with a clear "no space" error and leave the catalog and the kms
# intact (no half-made snapshot, backup or volume); once space is freed
# (punch-hole through the mount, deleting a volume) writing works again and
# everything survives a remount.
. "$(dirname "$0")/lib.sh"
command -v mkfs.ext4 >/dev/null && losetup -f >/dev/null 2>&1 ||
  { echo "SKIPPED: e2e_fullfs needs mkfs.ext4 and a free loop device" >&2; exit 77; }
DISK=$T/disk
mkdir -p "$DISK"
fullfs_cleanup() {
  set +e
  # The daemon holds the store open: unmount it before the disk under it.
  if mountpoint -q "$MNT"; then umnt || umount -l "$MNT"; fi
  mountpoint -q "$DISK" && { umount "$DISK" || umount -l "$DISK"; }
  cleanup
}
trap fullfs_cleanup EXIT
truncate -s 64M "$T/disk.img"
mkfs.ext4 -q -F -m 0 "$T/disk.img"
mount "$(losetup_add "$T/disk.img")" "$DISK"
dd if=/dev/zero of="$DISK/ballast" bs=1M count=2 status=none    # "another file", deleted in step 4
STORE=$DISK/store
export EVFS_STORE=$STORE
new_store
sed -i "s|^log_file =.*|log_file = $T/evfs.log|" "$STORE/evfs.ini"   # the log is not on the full disk
ctl volume create v --size 256M --encrypt >/dev/null
ctl volume create spare --size 32M --encrypt >/dev/null
mnt
ctl attach v >/dev/null
ctl attach spare >/dev/null
V=$MNT/volumes/v S=$MNT/volumes/spare
vsync() { python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDWR); os.fsync(fd)' "$1"; }
sum() { dd if="$1" bs=1M skip="$2" count="$3" status=none | sha256sum | cut -d' ' -f1; }
free_kib() { df -k --output=avail "$DISK" | tail -1 | tr -d ' '; }

head -c 12M /dev/urandom >"$T/spare.ref"
dd if="$T/spare.ref" of="$S" bs=1M conv=notrunc,fsync status=none
head -c 8M /dev/urandom >"$T/base"
dd if="$T/base" of="$V" bs=1M conv=notrunc,fsync status=none
base_sum=$(sha256sum <"$T/base" | cut -d' ' -f1)
ok "store on a 64 MiB ext4 ($(free_kib) KiB free); 256 MiB thin volume with 8 MiB fsynced"

# 1. One large dd with conv=fsync until the disk is full.
head -c 128M /dev/urandom >"$T/src"
set +e; dd if="$T/src" of="$V" bs=1M seek=8 conv=notrunc,fsync 2>"$T/dd.err"; rc=$?; set -e
[ $rc != 0 ] || die "dd of 128 MiB onto a 64 MiB disk succeeded"
grep -q "No space left on device" "$T/dd.err" || die "dd must fail with ENOSPC: $(cat "$T/dd.err")"
! grep -qi "input/output" "$T/dd.err" || die "dd got EIO: $(cat "$T/dd.err")"
N=$(sed -n 's/^\([0-9]*\) bytes.*copied.*/\1/p' "$T/dd.err")
[ "$N" -gt $((16 << 20)) ] || die "only $N bytes fit before ENOSPC"
cmp -n "$N" "$T/src" <(dd if="$V" bs=1M skip=8 status=none) || die "bytes written before ENOSPC differ"
[ "$(sum "$V" 0 8)" = "$base_sum" ] || die "data fsynced before the disk filled changed"
ok "dd past the free space fails with ENOSPC after $((N >> 20)) MiB; those bytes and the older data read back"

# 2. Free 4 MiB through the mount (punch-hole; the space returns at fsync),
#    then many small writes (4 KiB and unaligned 1000 B) until ENOSPC.
fallocate --punch-hole -o $((8 << 20)) -l $((4 << 20)) "$V"
vsync "$V"
cmp -n $((4 << 20)) "$V" /dev/zero -i $((8 << 20)):0 || die "punched range must read zeros"
SMALL_AT=$(( ((8 << 20) + N + (2 << 20)) & ~((1 << 20) - 1) ))
python3 - "$V" "$SMALL_AT" "$T/small.log" <<'PY'
import errno, os, sys
path, at, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fd = os.open(path, os.O_RDWR)
done, off, fails, i = [], at, [], 0
while len(fails) < 4 and off < 250 << 20:
    n = 4096 if i % 3 else 1000           # every third write unaligned and partial
    data = os.urandom(n)
    try:
        w = os.pwrite(fd, data, off)
        assert w == n, f"short write {w} of {n} at {off}"
        done.append((off, data))
    except OSError as e:
        if e.errno != errno.ENOSPC:
            sys.exit(f"small write at {off}: {e} (want ENOSPC)")
        fails.append(off)
        # A failed write leaves its chunk as it was (zeros here).
        if os.pread(fd, n, off) != bytes(n):
            sys.exit(f"failed write at {off} changed the volume")
        continue
    if i % 64 == 0:
        os.fsync(fd)
    off += n + (n % 4096 and 3096)           # 1000 B writes share their chunk with nothing else
    i += 1
if not fails:
    sys.exit("small writes never hit ENOSPC")
os.fsync(fd)
bad = [o for o, d in done if os.pread(fd, len(d), o) != d]
if bad:
    sys.exit(f"{len(bad)} acknowledged small writes read back wrong, first at {bad[0]}")
with open(log, "wb") as f:
    for o, d in done:
        f.write(o.to_bytes(8, "little") + len(d).to_bytes(4, "little") + d)
print(f"{len(done)} small writes ({sum(len(d) for _, d in done) >> 10} KiB) before ENOSPC")
PY
ok "small writes until ENOSPC: each failure is ENOSPC and leaves zeros; acknowledged ones read back"

# 3. Zero bytes free (a filler file takes the rest).
set +e; dd if=/dev/zero of="$DISK/filler" bs=4k status=none 2>/dev/null; set -e
sync
set +e; dd if=/dev/urandom of="$V" bs=4k count=1 seek=$(( (200 << 20) / 4096 )) conv=notrunc,fsync 2>"$T/dd.err"; rc=$?; set -e
[ $rc != 0 ] && grep -q "No space left on device" "$T/dd.err" || die "write on a full disk: rc=$rc $(cat "$T/dd.err")"
dd if="$V" of=/dev/null bs=1M status=none || die "volume unreadable on a full disk"
[ "$(sum "$V" 0 8)" = "$base_sum" ] || die "base data changed on a full disk"
cmp -n $((N - (4 << 20))) "$T/src" <(dd if="$V" bs=1M skip=12 status=none) -i $((4 << 20)):0 || die "dd data changed"
ok "with 0 bytes free: writes fail with ENOSPC, the whole volume reads, data unchanged"

# evfsctl on the full disk: clear errors, nothing half-made.
expect_fail 1 "$EVFSCTL_BIN" snapshot create v s1
grep -q "snapshot s1.*No space left on device.*free space" "$T/err" || die "snapshot on a full disk: $(cat "$T/err")"
expect_fail 1 "$EVFSCTL_BIN" backup create v b1
grep -q "backup b1.*No space left on device.*free space" "$T/err" || die "backup on a full disk: $(cat "$T/err")"
expect_fail 1 "$EVFSCTL_BIN" volume create x --size 1M
grep -q "No space left on device.*free space" "$T/err" || die "volume create on a full disk: $(cat "$T/err")"
# The kms and the catalog are SQLite: whether a small write still fits in
# their WAL depends on its state, so accept success or a clear ENOSPC.
kms_try() {
  set +e; "$EVFSCTL_BIN" "$@" >"$T/out" 2>"$T/err"; local rc=$?; set -e
  [ $rc = 0 ] || { [ $rc = 1 ] && grep -q "No space left on device.*free space" "$T/err"; } ||
    die "$* on a full disk: rc=$rc $(cat "$T/err")"
  echo "    $*: $([ $rc = 0 ] && echo succeeded || cat "$T/err")"
  return $rc
}
k1=0; kms_try key create k1 || k1=$?
y=0; kms_try volume create y --size 1M --encrypt || y=$?
ctl --json volume list >"$T/vl" || die "volume list on a full disk"
grep -q '"name":"v"' "$T/vl" && grep -q '"name":"spare"' "$T/vl" || die "volume list lost volumes: $(cat "$T/vl")"
! grep -q '"name":"x"' "$T/vl" || die "a failed volume create left a volume"
[ "$(ctl snapshot list | wc -l)" -le 1 ] && [ "$(ctl backup list | wc -l)" -le 1 ] || die "failed commands left objects"
ctl key list >/dev/null && ctl kms audit --verify >/dev/null || die "kms unusable on a full disk"
VLIN=$(ctl --json volume show v | jget lineage)
if [ -d "$STORE/pools/$VLIN/maps" ]; then   # format 1: a file per map
  [ "$(ls -A "$STORE/pools/$VLIN/maps" | wc -l)" = 1 ] || die "failed commands left maps: $(ls -A "$STORE/pools/$VLIN/maps")"
else                                        # format 2: root records of 128 bytes from block 1 (id, ..., used at 92)
  maps=$(python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read()[4096:]
print(sum(1 for o in range(0, len(b) - 127, 128) if struct.unpack_from("<I", b, o + 92)[0]))' "$STORE/pools/$VLIN/roots")
  [ "$maps" = 1 ] || die "failed commands left maps: $maps root records in use"
fi
[ -z "$(ls -A "$STORE/backups")" ] || die "a failed backup left files: $(ls -A "$STORE/backups")"
ok "on a full disk snapshot/backup/volume create fail with a 'no space ... free space' error; nothing half-made; lists and audit intact"

# Detach on a full disk: the key is wiped whatever the catalog says.
set +e; ctl detach spare >"$T/out" 2>"$T/err"; det=$?; set -e
[ $det = 0 ] || grep -q "spare.*detached.*No space left on device" "$T/err" || die "detach: $(cat "$T/err")"
set +e; dd if="$S" of=/dev/null bs=4k count=1 status=none 2>"$T/err2"; rc=$?; set -e
[ $rc != 0 ] && grep -qi "key" "$T/err2" || die "I/O on spare after detach on a full disk: rc=$rc $(cat "$T/err2")"
ok "detach on a full disk wipes the key (I/O fails ENOKEY); exit $det"

# 4. Free space: other files on the disk, then delete the spare volume.
rm -f "$DISK/filler" "$DISK/ballast"
[ $det = 0 ] || ctl detach spare >/dev/null
ctl attach spare >/dev/null
cmp "$T/spare.ref" <(head -c 12M "$S") || die "spare data lost"
ctl detach spare >/dev/null
before=$(free_kib)
ctl volume delete spare >/dev/null
after=$(free_kib)
[ "$after" -gt $((before + 8192)) ] || die "deleting spare freed too little ($before -> $after KiB)"
dd if="$T/src" of="$V" bs=1M seek=220 count=4 conv=notrunc,fsync status=none || die "write after freeing space"
ctl snapshot create v s1 >/dev/null
ctl backup create v b1 >/dev/null 2>&1 && backup=1 || backup=0    # may not fit: the volume holds ~40 MiB
[ $k1 = 0 ] || ctl key create k1 >/dev/null
ctl key show k1 >/dev/null
[ $y = 0 ] || ctl volume create y --size 1M --encrypt >/dev/null
ctl volume create x --size 1M >/dev/null
ok "after freeing space ($before -> $after KiB): writes, snapshot, key and volume create work again (backup fit: $backup)"

check_all() {
  [ "$(sum "$V" 0 8)" = "$base_sum" ] || die "$1: base data"
  cmp -n $((N - (4 << 20))) "$T/src" <(dd if="$V" bs=1M skip=12 status=none) -i $((4 << 20)):0 || die "$1: dd data"
  cmp -n $((4 << 20)) "$T/src" <(dd if="$V" bs=1M skip=220 status=none) || die "$1: data written after freeing"
  python3 - "$V" "$T/small.log" "$1" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); b = open(sys.argv[2], "rb").read(); i = n = 0
while i < len(b):
    o = int.from_bytes(b[i:i+8], "little"); l = int.from_bytes(b[i+8:i+12], "little"); d = b[i+12:i+12+l]
    if os.pread(fd, l, o) != d:
        sys.exit(f"{sys.argv[3]}: small write at {o} lost")
    i += 12 + l; n += 1
PY
  ctl fsck v | grep -q "0 bad chunk" || die "$1: fsck v"
  ctl fsck s1 | grep -q "0 bad chunk" || die "$1: fsck s1"
}
check_all "before remount"
umnt
mnt
check_all "after remount"
grep -q "serving store" "$T/evfs.log" || die "no daemon log in $T/evfs.log"
! grep -q "EIO" "$T/evfs.log" || die "the daemon reported EIO: $(grep EIO "$T/evfs.log" | head -3)"
ok "all data verifies before and after a remount; fsck clean; the daemon never returned EIO"
finish
