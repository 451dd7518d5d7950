#!/usr/bin/env bash
# R15, R17, R21-R23, R26 (partly), R27, R28 and the mount program against a
# real FUSE mount: I/O at chunk boundaries, ciphertext at rest, tamper -> EIO,
# ext4 on a loop device, remount persistence, attach/detach, xattrs, errors.
. "$(dirname "$0")/lib.sh"
new_store
ctl volume create v1 --size 64M --encrypt >/dev/null
ctl volume create plain1 --size 16M >/dev/null
mnt
ctl attach v1 >/dev/null; ctl attach plain1 >/dev/null
V=$MNT/volumes/v1
[ "$(stat -c '%s %a %u' "$V")" = "67108864 600 0" ] || die "volume attributes: $(stat -c '%s %a %u' "$V")"
ok "volume file has the volume size, mode 0600 and its owner"
[ -d "$MNT/snapshots" ] && [ -d "$MNT/backups" ] && [ -d "$MNT/images" ] || die "top-level dirs"
ok "mount shows volumes/ snapshots/ backups/ images/"

# Reference file written the same way as the volume.
REF=$T/ref; truncate -s 64M "$REF"
python3 - "$V" "$REF" <<'PY'
import os, sys, random
random.seed(7)
fds = [os.open(p, os.O_RDWR) for p in sys.argv[1:]]
offs = [0, 1, 4095, 4096, 4097, 8191, 8192, 65535, 1 << 20, (1 << 20) + 3, 64*2**20 - 5000]
for o in offs:
    data = os.urandom(random.choice([1, 17, 4095, 4096, 4097, 12288, 70000]))
    data = data[:64*2**20 - o]
    for fd in fds: os.pwrite(fd, data, o)
for _ in range(400):
    o = random.randrange(0, 64*2**20 - 300000); data = os.urandom(random.randrange(1, 300000))
    for fd in fds: os.pwrite(fd, data, o)
for fd in fds: os.fsync(fd); os.close(fd)
PY
cmp "$V" "$REF" || die "volume differs from reference file"
ok "writes at chunk boundaries and odd offsets read back like a plain file"

printf 'EVFS-PLAINTEXT-MARKER-%s' {1..300} | dd of="$V" bs=1M seek=10 conv=notrunc,fsync status=none
printf 'EVFS-PLAINTEXT-MARKER-%s' {1..300} | dd of="$MNT/volumes/plain1" bs=1M seek=1 conv=notrunc,fsync status=none
grep -q "EVFS-PLAINTEXT-MARKER" "$V" || die "marker not readable through the mount"
V1LIN=$(ctl --json volume show v1 | jget lineage)
PLIN=$(ctl --json volume show plain1 | jget lineage)
! rest_grep "$V1LIN" "EVFS-PLAINTEXT-MARKER" || die "plaintext marker found in the encrypted pool"
rest_grep "$PLIN" "EVFS-PLAINTEXT-MARKER" || die "unencrypted pool should hold the marker (control)"
ok "encrypted pool holds no plaintext (the unencrypted control pool does)"

# xattrs (R28) and immutability through setxattr (R1)
[ "$(getfattr --only-values -n user.evfs.encrypted "$V")" = 1 ] || die "xattr encrypted"
[ "$(getfattr --only-values -n user.evfs.key_state "$V")" = Enabled ] || die "xattr key_state"
[ "$(getfattr --only-values -n user.evfs.attached "$V")" = 1 ] || die "xattr attached"
[ "$(getfattr --only-values -n user.evfs.encrypted "$MNT/volumes/plain1")" = 0 ] || die "xattr plain"
! setfattr -n user.evfs.encrypted -v 0 "$V" 2>/dev/null || die "setxattr must fail"
[ "$(getfattr --only-values -n user.evfs.encrypted "$V")" = 1 ] || die "attribute changed"
ok "xattrs show the attributes read-only; setxattr is refused (R1, R28)"

# thin + discard (R23)
before=$(rest_kib "$V1LIN/data")
fallocate -p -o 0 -l 32M "$V"
after=$(rest_kib "$V1LIN/data")
[ "$after" -lt "$before" ] || die "punch hole did not free space ($before -> $after KiB)"
cmp -n 32M "$V" /dev/zero || die "discarded range must read zeros"
ok "punch-hole returns space ($before -> $after KiB) and reads zeros (R23)"

# ext4 on a loop device
L=$(losetup_add "$V")
mkfs.ext4 -q -F "$L"; mount "$L" "$FSMNT"
head -c 20M /dev/urandom > "$T/blob"; cp "$T/blob" "$FSMNT/blob"; mkdir "$FSMNT/d"; cp -r /etc/ssl "$FSMNT/d/" 2>/dev/null || true
sync; sum1=$(sha256sum "$FSMNT/blob" | cut -d' ' -f1)
fstrim "$FSMNT" 2>/dev/null || true
umount "$FSMNT"; e2fsck -fn "$L" >/dev/null || die "e2fsck found errors"
losetup -d "$L"; LOOPS=()
ok "ext4 on a loop device over the volume: mkfs, copy, fstrim, e2fsck clean"

# tamper (R22): flip bytes of every slot in the pool data; reads must fail with EIO, never other data
umnt
rest_get "$V1LIN" data "$T/data.bak"
rest_edit "$V1LIN" data python3 - <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
for i in range(100, len(b), 4096): b[i] ^= 0x55
open(p, 'wb').write(b)
PY
mnt
set +e; dd if="$V" of=/dev/null bs=1M count=40 skip=32 status=none 2>"$T/err"; rc=$?; set -e
[ $rc != 0 ] && grep -qi "input/output error" "$T/err" || die "tampered data must give EIO (rc=$rc: $(cat "$T/err"))"
ok "tampered ciphertext reads as EIO (R22)"
umnt; rest_put "$V1LIN" data "$T/data.bak"

# remount persistence + re-attach (R21)
mnt
[ "$(getfattr --only-values -n user.evfs.attached "$V")" = 1 ] || die "not re-attached after remount"
L=$(losetup_add "$V"); mount "$L" "$FSMNT"
[ "$(sha256sum "$FSMNT/blob" | cut -d' ' -f1)" = "$sum1" ] || die "data changed across remount"
umount "$FSMNT"; losetup -d "$L"; LOOPS=()
ok "remount re-attaches the volume and the filesystem reads back identical (R21)"

# detach -> I/O fails with ENOKEY (R17); attach again -> data back
ctl detach v1 >/dev/null
set +e; dd if="$V" of=/dev/null bs=4k count=1 status=none 2>"$T/err"; rc=$?; set -e
[ $rc != 0 ] && grep -qi "key" "$T/err" || die "I/O on a detached volume must fail with ENOKEY: $(cat "$T/err")"
ctl attach v1 >/dev/null
L=$(losetup_add "$V"); e2fsck -fn "$L" >/dev/null || die "fs damaged after detach/attach"; losetup -d "$L"; LOOPS=()
ok "detached volume refuses I/O (ENOKEY); re-attach restores it (R17)"

# second mount refused, naming the first
mkdir -p "$T/mnt2"
expect_fail 1 "$EVFS_BIN" "$STORE" "$T/mnt2"
grep -q "$MNT" "$T/err" || die "second mount message must name the first mount"
ok "a second mount of the store is refused and names the first"

# bad arguments and config
expect_fail 2 "$EVFSCTL_BIN" volume create
expect_fail 2 "$EVFSCTL_BIN" volume create x --size 12Q
expect_fail 2 "$EVFSCTL_BIN" --bogus volume list
expect_fail 2 "$EVFS_BIN"
umnt
cp "$STORE/evfs.ini" "$T/ini.bak"; printf '[store]\nchunk_size = 5000\n' >> "$STORE/evfs.ini"
expect_fail 1 "$EVFSCTL_BIN" volume list
grep -q "evfs.ini:[0-9]*:.*chunk_size" "$T/err" || die "config error must name file, line and key"
cp "$T/ini.bak" "$STORE/evfs.ini"
ok "bad arguments exit 2; a bad config line is reported with file, line and key"

# store modes (R27)
[ "$(stat -c %a "$STORE")" = 700 ] || die "store mode"
if on_pg; then   # no .db files: the catalog and the key store are PostgreSQL schemas
  [ "$(stat -c %a "$STORE/evfs.ini")" = 600 ] || die "mode of evfs.ini"
  [ "$(pg_grants)" = 0 ] || die "the store's schemas are granted to other roles: $(pg_grants list)"
  ok "store is 0700, evfs.ini 0600, its PostgreSQL schemas granted to no other role (R27; .db file modes: local store only)"
else
  for f in "$STORE"/*.db "$STORE/evfs.ini"; do [ "$(stat -c %a "$f")" = 600 ] || die "mode of $f"; done
  ok "store is 0700 and its files 0600 (R27)"
fi
finish
