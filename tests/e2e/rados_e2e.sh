#!/bin/bash
# rados_e2e: a store whose chunk pools are RADOS objects (R29, first step:
# the catalog and the KMS stay in the store directory).  Run by ctest under
# tests/cluster/ceph.sh, which starts a throwaway one-OSD Ceph and exports
# EVFS_CEPH_CONF / EVFS_CEPH_POOL.  Checks: init reaches the cluster (and a
# wrong pool changes nothing), a volume written through the mount reads back
# after a snapshot and a remount, the data objects hold no plaintext, fsck is
# clean (and tells free slots from leaked ones), ext4 on a loop device over the volume checks clean, and deleting
# the lineage's last map removes its objects.
. "$(dirname "$0")/lib.sh"
export EVFS_E2E_STORE=rados
: "${EVFS_CEPH_CONF:?run under tests/cluster/ceph.sh}" "${EVFS_CEPH_POOL:?}"

# A pool that does not exist: refused, and the directory stays empty.
expect_fail 1 ctl init --keyfile "$T/root.key" --rados-conf "$EVFS_CEPH_CONF" --rados-pool no-such-pool
grep -q "no such pool" "$T/err" || die "init with a missing pool: no clear message"
[ ! -e "$STORE/evfs.ini" ] || die "init with a missing pool wrote evfs.ini"
ok "init with a RADOS pool that does not exist is refused and writes nothing"

new_store
grep -q '^backend = rados$' "$STORE/evfs.ini" || die "evfs.ini does not say backend = rados"
NS=$(sed -n 's/^namespace = //p' "$STORE/evfs.ini")
[ -n "$NS" ] || die "evfs.ini has no [rados] namespace"
R=(rados -c "$EVFS_CEPH_CONF" -p "$EVFS_CEPH_POOL" -N "$NS")
ok "init writes [store] backend = rados and a namespace ($NS)"

ctl key create k1 >/dev/null
ctl volume create v1 --size 256M --encrypt --key k1 >/dev/null
mnt; ctl attach v1 >/dev/null
python3 -c "import sys; open(sys.argv[1], 'wb').write((b'EVFS-PLAINTEXT-MARKER-0123456789\\n' * 600000)[:16 << 20])" "$T/pat"
dd if="$T/pat" of="$MNT/volumes/v1" bs=1M conv=fsync,notrunc status=none
ctl snapshot create v1 s1 >/dev/null
cmp -n $((16 << 20)) "$T/pat" "$MNT/volumes/v1" || die "v1 does not read back what was written"
cmp -n $((16 << 20)) "$T/pat" "$MNT/snapshots/s1" || die "snapshot s1 does not read back"
ok "16 MiB written, fsynced, snapshotted and read back through the mount"

# ext4 on a loop device over the volume file, past the written region.
L=$(losetup_add "$MNT/volumes/v1")
mkfs.ext4 -q -E offset=$((32 << 20)) "$L" $((128 << 10)) >/dev/null 2>&1 || die "mkfs.ext4 on the volume failed"
losetup -d "$L"
ctl detach v1 >/dev/null; umnt
rados_plain_scan "$NS"
grep -q '\.hdr$' "$T/objs" && grep -q '\.data\.' "$T/objs" && grep -q '\.roots\.' "$T/objs" ||
  die "the namespace lacks the pool's objects: $(cat "$T/objs")"
ok "$N_DATA data objects, none holding the plaintext"

mnt; ctl attach v1 >/dev/null
cmp -n $((16 << 20)) "$T/pat" "$MNT/volumes/v1" || die "v1 after a remount differs"
L=$(losetup_add "$MNT/volumes/v1")
losetup -d "$L"
ok "after a remount v1 reads back the same"
ctl fsck >"$T/fsck" 2>&1 || { cat "$T/fsck"; die "fsck found problems"; }
grep -q "0 problem(s) found" "$T/fsck" || { cat "$T/fsck"; die "fsck not clean"; }
ok "fsck is clean"

# Free space: RADOS has no SEEK_HOLE, so fsck reads free slots, and only a
# free slot holding non-zero bytes is a leak.  v2's first 4 MiB (its data
# object 0) is discarded: freed slots, not leaks.  Junk put into that
# object is a leak: reported, then gone (the pool punches its free runs
# when its last user lets go of it, here the check itself; else --repair).
ctl volume create v2 --size 16M --encrypt --key k1 >/dev/null
ctl attach v2 >/dev/null
dd if=/dev/urandom of="$MNT/volumes/v2" bs=1M count=8 conv=fsync,notrunc status=none
fallocate -p -o 0 -l 4M "$MNT/volumes/v2" || die "discard of v2's first 4 MiB failed"
ctl detach v2 >/dev/null
LIN2=$(ctl --json volume show v2 | jget lineage)
rados_cmd
! "${RADOS_CMD[@]}" stat "$LIN2.data.0000000000000000" >/dev/null 2>&1 ||
  die "v2's data object 0 is still there after its 4 MiB were discarded"
"${RADOS_CMD[@]}" stat "$LIN2.data.0000000000000001" >/dev/null || die "v2's data object 1 is missing"
ctl fsck >"$T/fsck" 2>&1 || { cat "$T/fsck"; die "fsck after a discard found problems"; }
grep -q " 0 leaked slot" "$T/fsck" || { cat "$T/fsck"; die "fsck counts discarded (free, removed) slots as leaked"; }
head -c 4096 /dev/urandom >"$T/junk"
"${RADOS_CMD[@]}" put "$LIN2.data.0000000000000000" "$T/junk"
ctl fsck >"$T/fsck" 2>&1 || { cat "$T/fsck"; die "fsck with a leaked slot found problems"; }
grep -q " 1 leaked slot" "$T/fsck" || { cat "$T/fsck"; die "a free slot holding data is not reported as leaked"; }
ctl fsck --repair >"$T/fsck" 2>&1 || { cat "$T/fsck"; die "fsck --repair failed"; }
ctl fsck >"$T/fsck" 2>&1; grep -q " 0 leaked slot" "$T/fsck" || { cat "$T/fsck"; die "the leak is still reported after --repair"; }
# (the whole object is free again: removed, or at least zeroed)
if "${RADOS_CMD[@]}" get "$LIN2.data.0000000000000000" "$T/obj0" 2>/dev/null; then
  python3 -c 'import sys; sys.exit(any(open(sys.argv[1], "rb").read()))' "$T/obj0" ||
    die "the leaked slot still holds the junk at rest"
fi
ctl attach v2 >/dev/null
cmp -n $((4 << 20)) /dev/zero "$MNT/volumes/v2" || die "v2's discarded range does not read as zeros"
ctl detach v2 >/dev/null
ok "fsck on RADOS: discarded slots are free, not leaked; junk in a free slot is a leak, and punched after"

ctl detach v1 >/dev/null
ctl snapshot delete s1 >/dev/null
ctl volume delete v1 >/dev/null
ctl volume delete v2 >/dev/null
umnt
"${R[@]}" ls >"$T/objs"
[ ! -s "$T/objs" ] || die "objects left after the last map of the lineage was deleted: $(head -5 "$T/objs")"
ok "deleting the lineage's last map removes its objects"
finish
