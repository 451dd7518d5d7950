#!/usr/bin/env bash
# Damaged or rolled-back format 2 pool files (copy-on-write map trees,
# fs/engine/tree.c): the root records, a map page, a pages file put back
# from an earlier copy, the whole pool directory put back from one (the
# catalog's freshness record).  Each must be refused with an error that names the
# file and says what to do, through the CLI and the live mount alike, never
# read as zeros or as another chunk; the other volumes keep reading their
# data, and the pool works again once the file is restored.  (Format 1's
# files: e2e_corrupt.)
. "$(dirname "$0")/lib.sh"

new_store
pool_format 2
ctl volume create v1 --size 8M --encrypt >/dev/null
ctl volume create v2 --size 8M >/dev/null
mnt
for v in v1 v2; do
  ctl attach $v >/dev/null
  head -c 3M /dev/urandom | dd of="$MNT/volumes/$v" bs=1M seek=1 conv=notrunc,fsync status=none
done
ctl snapshot create v1 s1 >/dev/null
declare -A SUM
for v in v1 v2; do SUM[$v]=$(sha "$MNT/volumes/$v"); done
umnt
L1=$(show_field volume v1 lineage)
P1=$STORE/pools/$L1
for f in roots pages srefs prefs journal data; do [ -s "$P1/$f" ] || die "format 2 pool layout: no $P1/$f"; done
[ ! -e "$P1/maps" ] && [ ! -e "$P1/tags" ] || die "format 2 pool has format 1 files"
cp -a "$STORE" "$T/good"
restore() { cp -a "$T/good/pools/$L1/$1" "$P1/$1"; }
# v2 (its own pool) must read its data whatever happens to v1's pool.
v2_ok() { [ "$(sha "$MNT/volumes/v2")" = "${SUM[v2]}" ] || die "v2 reads wrong data (damage in v1's pool only)"; }
ok "format 2 store: an encrypted volume with a snapshot, a plain volume; copy kept"

# ---- a root record ----------------------------------------------------------
printf '\x5a' | dd of="$P1/roots" bs=1 seek=$((4096 + 60)) conv=notrunc status=none
mnt
set +e; ctl attach v1 >"$T/out" 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] || die "attach with a damaged root record: exit $rc ($(cat "$T/err"))"
! head -c 4096 "$MNT/volumes/v1" >/dev/null 2>&1 || die "v1 readable with a damaged root record"
ctl attach v2 >/dev/null 2>&1 || true
v2_ok
umnt
grep -q "pool $L1: the root records of .*/roots do not match the header.*restore the pool from a copy" "$STORE/mount.log" \
  "$T/evfs.log" 2>/dev/null || die "the log does not name roots and the remedy: $(cat "$T/err")"
restore roots
ok "a root record altered on disk: v1 refused (the log names $L1/roots and says to restore it), v2 reads its data"

# ---- a map page -----------------------------------------------------------
flip_pages() {
  local n; n=$(( $(stat -c %s "$P1/pages") / 4096 ))
  python3 - "$P1/pages" "$n" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    for pg in range(n):
        f.seek(pg * 4096 + 1); b = f.read(1); f.seek(pg * 4096 + 1); f.write(bytes([b[0] ^ 1]))
PY
}
flip_pages
mnt
ctl attach v1 >/dev/null 2>&1 || true
set +e; dd if="$MNT/volumes/v1" of=/dev/null bs=1M skip=1 count=1 status=none 2>"$T/err"; rc=$?; set -e
[ $rc != 0 ] && grep -q "Input/output error" "$T/err" || die "a damaged map page must read as EIO (rc $rc: $(cat "$T/err"))"
v2_ok
set +e; ctl fsck >"$T/out" 2>&1; rc=$?; set -e
[ $rc = 1 ] && grep -q "map page does not match its parent's hash" "$T/out" && grep -q "restore the pool from a copy" "$T/out" ||
  { cat "$T/out"; die "fsck must report the damaged page (exit $rc)"; }
umnt
grep -q "map page .* of .*/pages does not match its parent's hash" "$T/evfs.log" ||
  die "the mount's log does not name the pages file"
restore pages
ok "map pages altered on disk: reads fail with EIO (never zeros), fsck names the page and the remedy, v2 unharmed"

# ---- a pages file rolled back to an earlier copy -----------------------------
mnt
ctl attach v1 >/dev/null 2>&1 || true
[ "$(sha "$MNT/volumes/v1")" = "${SUM[v1]}" ] || die "v1 after the restore of its files"
cp "$P1/pages" "$T/pages.old"
head -c 1M /dev/urandom | dd of="$MNT/volumes/v1" bs=1M seek=2 conv=notrunc,fsync status=none
umnt
cp "$T/pages.old" "$P1/pages"
mnt
ctl attach v1 >/dev/null 2>&1 || true
set +e; dd if="$MNT/volumes/v1" of=/dev/null bs=1M status=none 2>"$T/err"; rc=$?; set -e
[ $rc != 0 ] && grep -q "Input/output error" "$T/err" || die "a rolled-back pages file must be refused (rc $rc)"
v2_ok
umnt
ok "a pages file put back from an earlier copy: refused (its pages no longer match the newer root records)"

# ---- the whole pool directory put back from an older copy ---------------------
# Self-consistent, so the pool cannot see it from the inside: the catalog's
# freshness record (generation and header hash at the last commit) can.
cp -a "$T/good/pools/$L1/." "$P1/"
mnt
set +e; ctl attach v1 >"$T/out" 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] || die "attach of a volume whose pool was rolled back: exit $rc ($(cat "$T/err"))"
grep -q "evfsctl fsck --repair" "$T/err" || die "the attach error does not name the remedy: $(cat "$T/err")"
set +e; dd if="$MNT/volumes/v1" of=/dev/null bs=1M count=1 status=none 2>"$T/err"; rc=$?; set -e
[ $rc != 0 ] && grep -q "Input/output error" "$T/err" || die "a rolled-back pool must read as EIO (rc $rc)"
v2_ok
set +e; ctl fsck >"$T/out" 2>&1; rc=$?; set -e
[ $rc = 1 ] && grep -q "pool $L1: the pool's files are older than the catalog's freshness record" "$T/out" ||
  { cat "$T/out"; die "fsck must report the rolled-back pool (exit $rc)"; }
umnt
grep -q "pool $L1: rolled back: its files in .*/$L1 are at generation [0-9]* but the store recorded generation [0-9]*" \
  "$T/evfs.log" || die "the mount's log does not name the rolled-back pool and the generations"
ok "the whole pool directory put back from an older copy: refused (EIO), the log and fsck name it and the generations"

# ---- accepted on purpose: everything reads again --------------------------------
ctl fsck --repair >"$T/out" 2>&1 || true
grep -q "pool $L1: its files are accepted as they are" "$T/out" || { cat "$T/out"; die "fsck --repair must accept the pool"; }
ctl fsck >"$T/out" 2>&1 || { cat "$T/out"; die "fsck after accepting the older pool"; }
mnt
ctl attach v1 >/dev/null 2>&1 || true
[ "$(sha "$MNT/volumes/v1")" = "${SUM[v1]}" ] || die "v1 after accepting its pool's older copy"
v2_ok
umnt
ok "fsck --repair accepts the older copy: v1 reads the data of the copy, fsck is clean"

# ---- the data file put back from an older copy --------------------------------
# A chunk's nonce and tag live in its leaf: older ciphertext at the slot the
# leaf names fails authentication, so the chunks written since the copy read
# as EIO, never as their old contents; the others read as before.
cp "$P1/data" "$T/data.old"
mnt
ctl attach v1 >/dev/null 2>&1 || true
head -c 64K /dev/urandom | dd of="$MNT/volumes/v1" bs=64K seek=80 conv=notrunc,fsync status=none   # 5 MiB
umnt
cp "$T/data.old" "$P1/data"
mnt
ctl attach v1 >/dev/null 2>&1 || true
set +e; dd if="$MNT/volumes/v1" of=/dev/null bs=64K skip=80 count=1 iflag=direct status=none 2>"$T/err"; rc=$?; set -e
[ $rc != 0 ] && grep -q "Input/output error" "$T/err" || die "chunks of a data file put back from a copy must read as EIO (rc $rc)"
dd if="$MNT/volumes/v1" of=/dev/null bs=1M count=4 iflag=direct status=none || die "the chunks not written since must read"
set +e; ctl fsck v1 >"$T/out" 2>&1; rc=$?; set -e
[ $rc = 1 ] && grep -Eq "chunk 1280 \(bytes 5242880-5246975\).*(authentication failed|beyond the end of the data file)" \
  "$T/out" ||
  { cat "$T/out"; die "fsck must name the rolled-back chunks (exit $rc)"; }
v2_ok
umnt
ok "the data file put back from an older copy: the chunks written since read as EIO and fsck names them; the rest reads"
# ---- a backup file replaced by an older backup of the same volume -----------
# The older backup's file, renamed to the newer one's id with the id inside
# its header edited and the header's (unkeyed) checksum recomputed, would
# read as the newer backup with older data; the catalog's record of each
# backup file's header checksum refuses it: EIO through the mount, a log
# line, a refused restore and an fsck problem.  Put back, it reads again.
mnt
ctl attach v2 >/dev/null 2>&1 || true
ctl backup create v2 bold >/dev/null
head -c 1M /dev/urandom | dd of="$MNT/volumes/v2" bs=1M seek=2 conv=notrunc,fsync status=none
ctl backup create v2 bnew >/dev/null
NEWSUM=$(sha "$MNT/backups/bnew")
BD=$STORE/backups
OLDID=$(show_field backup bold id) NEWID=$(show_field backup bnew id)
cp "$BD/$NEWID.evb" "$T/bnew.evb"
python3 - "$BD/$OLDID.evb" "$BD/$NEWID.evb" "$NEWID" <<'PY'
import hashlib, sys, uuid
src, dst, newid = sys.argv[1], sys.argv[2], sys.argv[3]
b = bytearray(open(src, 'rb').read())
b[224:240] = uuid.UUID(newid).bytes             # struct bk_header: id at 224
b[320:352] = hashlib.blake2b(bytes(b[:320]), digest_size=32).digest()
open(dst, 'wb').write(b)
PY
set +e; cat "$MNT/backups/bnew" >/dev/null 2>"$T/err"; rc=$?; set -e
[ $rc != 0 ] && grep -q "Input/output error" "$T/err" || die "a backup file replaced by an older backup must read as EIO (rc $rc)"
grep -q "backup bnew (project default): rolled back: its file .*$NEWID.evb is not the one the catalog recorded" \
  "$T/evfs.log" || die "no log line naming the rolled-back backup"
expect_fail 1 ctl volume create rb --from-backup bnew
grep -q "backup bnew: its file .* is not the one the catalog recorded" "$T/err" || die "restore must say why"
set +e; ctl fsck bnew >"$T/out" 2>&1; ctl fsck >"$T/out2" 2>&1; rc=$?; set -e
[ $rc = 1 ] && grep -q "backup bnew: its file .* is not the one the catalog recorded" "$T/out2" ||
  { cat "$T/out2"; die "fsck must report the rolled-back backup (exit $rc)"; }
cp "$T/bnew.evb" "$BD/$NEWID.evb"
[ "$(sha "$MNT/backups/bnew")" = "$NEWSUM" ] || die "the right backup file put back must read again"
umnt
ok "a backup file replaced by an older backup of the same volume: EIO, a log line, restore refused, fsck reports it; put back, it reads"
finish
