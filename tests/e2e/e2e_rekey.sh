#!/usr/bin/env bash
# volume rekey (R33) on a live mount.  An encrypted volume with a snapshot,
# an image and a backup is rekeyed three times: once while fio writes and
# verifies (crc32c) another region of it, once with evfsctl SIGKILLed (the
# mount finishes the command), once with the mount SIGKILLed half way (the
# next run resumes).  After each: the snapshot, the image (through a volume
# made from it) and the volume read
# back bit for bit, fio's data verifies, fsck is clean; at the end the
# original wrapped data key is gone from the catalog file, the backup taken
# under it still restores, and a scan finds no chunk naming an old key.
. "$(dirname "$0")/lib.sh"
command -v fio >/dev/null && command -v sqlite3 >/dev/null ||
  { echo "SKIPPED: e2e_rekey needs fio and sqlite3" >&2; exit 77; }
new_store
daemon_pid() { pgrep -f "^$EVFS_BIN $STORE $MNT" || true; }
CAT=$STORE/catalog.db
q() { cat_sql "$1"; }

ctl key create k1 >/dev/null
ctl volume create rv --size 320M --encrypt --key k1 >/dev/null
LIN=$(show_field volume rv lineage)
mnt; ctl attach rv >/dev/null
head -c 192M /dev/urandom > "$T/a"
dd if="$T/a" of="$MNT/volumes/rv" bs=4M conv=notrunc,fsync status=none
ctl snapshot create rv s1 >/dev/null
ctl image create rv i1 >/dev/null
ctl backup create rv b0 >/dev/null
SUM_A=$(sha "$T/a")
SUM_S1=$(sha "$MNT/snapshots/s1")
head -c 16M /dev/urandom | dd of="$T/a" bs=4M conv=notrunc status=none
dd if="$T/a" of="$MNT/volumes/rv" bs=4M count=4 conv=notrunc,fsync status=none
SUM_V=$(sha "$T/a"); rm -f "$T/a"
OLD=$(q "SELECT $(sql_hex wrapped) FROM lineages WHERE id = '$LIN'")
[ ${#OLD} -gt 64 ] || die "no wrapped data key for lineage $LIN in the catalog"
ok "setup: 192 MiB written to an encrypted volume, snapshot s1, image i1, backup b0, 16 MiB rewritten"

# fio: random 4 KiB writes with crc32c headers in [256M, 320M), verified at the end.
FIO=(fio --name=rk --filename="$MNT/volumes/rv" --offset=256M --size=64M --rw=randwrite --bs=4k
  --ioengine=psync --verify=crc32c --verify_fatal=1 --randrepeat=1 --randseed=7 --fsync=256 --verify_state_save=0 --output="$T/fio")
check_all() {   # WHAT: every map reads as before, fio's region verifies, fsck clean
  [ "$(head -c 192M "$MNT/volumes/rv" | sha256sum | cut -d' ' -f1)" = "$SUM_V" ] || die "$1: volume rv changed"
  [ "$(sha "$MNT/snapshots/s1")" = "$SUM_S1" ] || die "$1: snapshot s1 changed"
  # An encrypted image is not readable itself: a volume made from it is.
  ctl volume create vi --from-image i1 >/dev/null; ctl attach vi >/dev/null
  [ "$(sha "$MNT/volumes/vi")" = "$SUM_S1" ] || die "$1: image i1 changed"
  ctl detach vi >/dev/null; ctl volume delete vi >/dev/null
  "${FIO[@]}" --verify_only >/dev/null || { cat "$T/fio"; die "$1: fio's data does not verify"; }
  ctl fsck >"$T/fsck" 2>&1 || { cat "$T/fsck"; die "$1: fsck not clean"; }
}
under_way() { [ "$(q "SELECT count(*) FROM lineage_keys WHERE lineage = '$LIN' AND old_wrapped IS NOT NULL")" = 1 ]; }
gen() { q "SELECT gen FROM lineage_keys WHERE lineage = '$LIN'"; }

# 1. Under fio load.
"${FIO[@]}" & FPID=$!
sleep 0.3
ctl volume rekey rv > "$T/out" || die "rekey under load failed"
wait $FPID || { cat "$T/fio"; die "fio (write + crc32c verify) failed during the rekey"; }
grep -q "rekeyed volume rv: data key generation 1, [1-9][0-9]* chunks re-encrypted ([0-9]* map entries); old key destroyed" "$T/out" ||
  { cat "$T/out"; die "rekey did not report generation 1"; }
under_way && die "rekey finished but the old key is still recorded"
check_all "rekey under fio"
ok "rekey under fio load: $(sed 's/.*, \([0-9]*\) chunks.*/\1/' "$T/out") chunks re-encrypted, fio verifies, maps unchanged"

# The key that sealed everything until now is gone from the catalog file
# (in PostgreSQL: from every row of the store's schemas; the server's own
# files are out of reach, so free pages and WAL are checked locally only).
if on_pg; then
  pg_dump_store "$T/dump"
  grep -qi "$(q "SELECT $(sql_hex wrapped) FROM lineages WHERE id = '$LIN'")" "$T/dump" ||
    die "control: the current wrapped key is not in the dump"
  grep -qi "$OLD" "$T/dump" && die "the destroyed wrapped key is still in a row of the store's schemas"
  ok "the original wrapped data key is in no row of the catalog (catalog file and WAL bytes: local store only)"
else
  for f in "$CAT" "$CAT-wal"; do
    [ -e "$f" ] || continue
    if xxd -p "$f" | tr -d '\n' | grep -qi "$OLD"; then die "the destroyed wrapped key is still in $f"; fi
  done
  ok "the original wrapped data key is no longer in the catalog file"
fi

# 2. evfsctl SIGKILLed: the mount runs the command to its end.
ctl volume rekey rv >/dev/null & CPID=$!
for _ in $(seq 200); do under_way && break; sleep 0.01; done
under_way || die "the rekey never showed as under way in the catalog"
kill -9 $CPID 2>/dev/null || true; wait $CPID 2>/dev/null || true
for _ in $(seq 300); do under_way || break; sleep 0.1; done
under_way && die "the mount did not finish the rekey after evfsctl was killed"
[ "$(gen)" = 2 ] || die "generation $(gen) after the second rekey (want 2)"
check_all "rekey with evfsctl killed"
ok "evfsctl killed during a rekey: the mount finished it (generation 2)"

# 3. The mount SIGKILLed half way; the next run resumes.
CAUGHT=0
for try in 1 2 3 4 5; do
  ctl volume rekey rv >/dev/null 2>&1 & CPID=$!
  for _ in $(seq 400); do under_way && break; sleep 0.005; done
  sleep "0.0$((try * 2))"
  dpid=$(daemon_pid); kill -9 "$dpid"; wait $CPID 2>/dev/null || true
  # Until the process is gone, not just its command line (pgrep misses an
  # exiting one): a RADOS pool's lock is broken only once its pid is free.
  for _ in $(seq 50); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
  fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
  mnt
  if under_way; then CAUGHT=1; break; fi
  echo "# try $try: the rekey had finished before the kill; again"
done
[ $CAUGHT = 1 ] || die "could not kill the mount during a rekey in 5 tries"
[ "$(q "SELECT old_gen FROM lineage_keys WHERE lineage = '$LIN'")" = "$(($(gen) - 1))" ] || die "old generation not recorded"
check_all "mount killed during a rekey (half rotated)"
ok "mount killed during a rekey: the half-rotated lineage reads right, fsck clean"
G=$(gen)
ctl volume rekey rv > "$T/out" || die "the resumed rekey failed"
grep -q "generation $G, .*(resumed)" "$T/out" || { cat "$T/out"; die "the rerun did not resume generation $G"; }
under_way && die "resumed rekey finished but the old key is still recorded"
check_all "resumed rekey"
ok "the rerun resumed generation $G and destroyed the old key"

# 4. The backup keeps its own key: it restores after three rotations.
ctl volume create r0 --from-backup b0 >/dev/null
ctl attach r0 >/dev/null
[ "$(head -c 192M "$MNT/volumes/r0" | sha256sum | cut -d' ' -f1)" = "$SUM_A" ] || die "backup b0 restores wrong data"
ok "backup b0, taken under the first key, restores bit for bit"

# 5. Nothing names an old generation: a further rekey of a quiet volume
#    re-encrypts exactly what is stored, and the data at rest is ciphertext.
umnt
ctl volume rekey rv > "$T/out" || die "offline rekey failed"
grep -q "generation $((G + 1))," "$T/out" || { cat "$T/out"; die "offline rekey: wrong generation"; }
ctl fsck >/dev/null || die "fsck after the offline rekey"
mnt
check_all "offline rekey"
ok "offline rekey (evfsctl without a mount): generation $((G + 1)), everything reads back"
umnt
finish
