#!/usr/bin/env bash
# evfsctl fsck: damage the store on purpose and check that fsck finds each
# fault (with the byte offsets of bad chunks), that --repair removes orphans
# and leaked slots, that --repair --quarantine turns a bad chunk into zeros,
# and that fsck runs through a live mount too.  The catalog is edited with
# the sqlite3 shell to stand in for a command killed before its commit.
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || { echo "SKIPPED: e2e_fsck needs the sqlite3 shell (apt-get install sqlite3)" >&2; exit 77; }
new_store
pool_format 1   # this test damages format 1 files (maps/, tags); format 2: e2e_corrupt2
field() { jget "$2" <<<"$1"; }
ctl volume create v --size 16M --encrypt >/dev/null
ctl volume create p --size 8M >/dev/null
ctl volume create w --size 8M --encrypt >/dev/null
mnt; for x in v p w; do ctl attach $x >/dev/null; done
head -c 4M /dev/urandom > "$T/a"
for x in v p w; do dd if="$T/a" of="$MNT/volumes/$x" bs=1M conv=notrunc,fsync status=none; done
ctl snapshot create p ps >/dev/null; ctl backup create v b1 >/dev/null
ctl fsck > "$T/out" || { cat "$T/out"; die "fresh store must be clean"; }
grep -q "clean" "$T/out" || die "summary must say clean"
ctl --json fsck > "$T/j"; grep -q '"clean":true' "$T/j" || die "json clean"
ok "a fresh store with data, a snapshot and a backup is clean (text and JSON, checked through the mount)"
umnt
VJ=$(ctl --json volume show v); VL=$(field "$VJ" lineage); VID=$(field "$VJ" id)
PJ=$(ctl --json volume show p); PL=$(field "$PJ" lineage); PID=$(field "$PJ" id)
WJ=$(ctl --json volume show w); WL=$(field "$WJ" lineage); WID=$(field "$WJ" id)
slot_of() { # map file, chunk index -> slot
  local e; e=$(od -An -t u8 -j $((4096 + 8 * $2)) -N 8 "$1" | tr -d ' '); echo $((e - 1)); }
flip() { # file offset: invert one byte
  local b; b=$(od -An -t u1 -j "$2" -N 1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# 1. a flipped byte in chunk 5 of v: reported with its byte range, exit 1
S=$(slot_of "$STORE/pools/$VL/maps/$VID.map" 5)
flip "$STORE/pools/$VL/data" $((S * 4096 + 100))
expect_fail 1 "$EVFSCTL_BIN" fsck > "$T/out"
grep -q "volume v: chunk 5 (bytes 20480-24575): authentication failed" "$T/out" || { cat "$T/out"; die "bad chunk offset"; }
grep -q "1 bad chunk" "$T/out" || die "summary must count 1 bad chunk"
set +e; ctl --json fsck v > "$T/j"; rc=$?; set -e
[ $rc = 1 ] && grep -q '"code":"bad_chunk","kind":"volume","name":"v".*"chunk":5,"offset":20480,"length":4096' "$T/j" \
  || { cat "$T/j"; die "json bad chunk"; }
ok "a flipped byte in chunk 5 is reported as bytes 20480-24575 of volume v (text, JSON), exit 1"

# 2. the same through the mount (forwarded over the control socket)
mnt; ctl attach v >/dev/null
expect_fail 1 "$EVFSCTL_BIN" fsck v > "$T/out"
grep -q "bytes 20480-24575" "$T/out" || die "fsck through the mount"
ok "fsck through a live mount reports the same chunk"

# 3. --quarantine needs --repair and a name; then the chunk becomes zeros
expect_fail 2 "$EVFSCTL_BIN" fsck v --quarantine
expect_fail 2 "$EVFSCTL_BIN" fsck --repair --quarantine
ctl fsck v --repair --quarantine > "$T/out" || { cat "$T/out"; die "quarantine must leave v clean"; }
grep -q "repaired: volume v: chunk 5 (bytes 20480-24575) replaced by zeros" "$T/out" || { cat "$T/out"; die "quarantine report"; }
cmp -n 20480 "$MNT/volumes/v" "$T/a" || die "bytes before the quarantined chunk"
[ "$(dd if="$MNT/volumes/v" bs=4096 skip=5 count=1 status=none | tr -d '\0' | wc -c)" = 0 ] || die "chunk 5 must read zeros"
cmp <(dd if="$MNT/volumes/v" bs=4096 skip=6 count=1018 status=none) <(dd if="$T/a" bs=4096 skip=6 status=none) || die "bytes after"
ctl fsck > "$T/out" || { cat "$T/out"; die "fsck after quarantine"; }
ok "--repair --quarantine (on an attached volume) zeroes chunk 5 only; the volume reads zeros there and fsck is clean"
umnt

# 4. an orphan map (snapshot whose catalog commit was lost): reported, --repair removes it
mnt; ctl snapshot create w wsnap >/dev/null; umnt
SID=$(field "$(ctl --json snapshot show wsnap)" id)
sqlite3 "$STORE/catalog.db" "DELETE FROM objects WHERE id='$SID'"
expect_fail 1 "$EVFSCTL_BIN" fsck > "$T/out"
grep -q "map $SID has no catalog object" "$T/out" || { cat "$T/out"; die "orphan map not reported"; }
ctl fsck --repair > "$T/out" || { cat "$T/out"; die "repair must clean the orphan"; }
grep -q "removed orphan map $SID" "$T/out" || die "repair report"
[ ! -e "$STORE/pools/$WL/maps/$SID.map" ] || die "orphan map still there"
ctl fsck >/dev/null || die "clean after repair"
ok "an orphan map (catalog commit lost) is reported and --repair removes it"

# 5. a leaked slot: a map entry cleared behind the engine's back
ctl fsck --repair >/dev/null           # give back the slots of earlier overwrites
before=$(stat -c %b "$STORE/pools/$WL/data")
printf '\0\0\0\0\0\0\0\0' | dd of="$STORE/pools/$WL/maps/$WID.map" bs=1 seek=$((4096 + 8 * 9)) conv=notrunc status=none
ctl fsck > "$T/out" || { cat "$T/out"; die "a leak alone is a warning"; }
grep -q "pool $WL: 1 slot(s) (4096 bytes) hold data no map references" "$T/out" || { cat "$T/out"; die "leak not reported"; }
ctl fsck --repair > "$T/out"; grep -q "pool $WL: punched 1 leaked slot" "$T/out" || { cat "$T/out"; die "leak not reclaimed"; }
after=$(stat -c %b "$STORE/pools/$WL/data")
[ "$after" -lt "$before" ] || die "punching the leaked slot must free blocks ($before -> $after)"
ctl fsck > "$T/out"; grep -q "0 leaked slot" "$T/out" || die "leak left"
ok "a leaked slot is reported (warning) and --repair punches it ($before -> $after blocks)"

# 6. a deleted map file: the catalog object is reported missing; not 'repaired'
ctl snapshot delete ps >/dev/null        # p's chunks are its own now
rm "$STORE/pools/$PL/maps/$PID.map"
expect_fail 1 "$EVFSCTL_BIN" fsck > "$T/out"
grep -q "volume p: its map $PID in pool $PL is missing" "$T/out" || { cat "$T/out"; die "missing map"; }
grep -q "pool $PL: 1024 slot(s) .*kept: a map of this lineage is missing" "$T/out" || { cat "$T/out"; die "leaks of a lineage with a missing map must be kept"; }
before=$(stat -c %b "$STORE/pools/$PL/data")
expect_fail 1 "$EVFSCTL_BIN" fsck --repair > "$T/out"
[ "$(stat -c %b "$STORE/pools/$PL/data")" = "$before" ] || die "repair must not punch the chunks of a missing map"
ctl volume delete p >/dev/null
ctl fsck --repair >/dev/null; ctl fsck >/dev/null || die "clean after deleting the broken volume"
ok "a deleted map file is reported as volume p's missing map; --repair neither invents it nor punches its chunks; deleting p cleans up"

# 7. a damaged map header and a short data file
flip "$STORE/pools/$WL/maps/$WID.map" 20
expect_fail 1 "$EVFSCTL_BIN" fsck > "$T/out"
grep -q "volume w (map $WID, pool $WL): map header damaged" "$T/out" || { cat "$T/out"; die "map header"; }
flip "$STORE/pools/$WL/maps/$WID.map" 20
truncate -s $((4096 * 100)) "$STORE/pools/$WL/data"
expect_fail 1 "$EVFSCTL_BIN" fsck w > "$T/out"
grep -q "volume w (map $WID, pool $WL): chunk 200 (bytes 819200-823295) -> slot [0-9]*: map entry points beyond the end of the data file" "$T/out" \
  || { cat "$T/out"; die "short data file"; }
grep -q "^problem: volume w: chunk 200 " "$T/out" && die "a broken entry must be reported once, not again as a bad chunk"
ok "a damaged map header and a truncated data file are reported with the volume, chunk and byte range"
ctl volume delete w >/dev/null

# 8. backups: orphan file (commit lost) removed by --repair; missing file reported
mnt; ctl attach v >/dev/null; ctl backup create v b2 --incremental >/dev/null; umnt
B2=$(field "$(ctl --json backup show b2)" id)
sqlite3 "$STORE/catalog.db" "DELETE FROM objects WHERE id='$B2'"
touch "$STORE/backups/.tmp-$B2.evb"
expect_fail 1 "$EVFSCTL_BIN" fsck > "$T/out"
grep -q "backups/$B2.evb: backup file with no catalog object" "$T/out" || { cat "$T/out"; die "orphan backup"; }
grep -q "backups/.tmp-$B2.evb: partial backup file" "$T/out" || die "tmp backup"
ctl fsck --repair >/dev/null; ctl fsck >/dev/null || die "backup orphans not repaired"
B1=$(field "$(ctl --json backup show b1)" id)
mv "$STORE/backups/$B1.evb" "$T/b1.evb"
expect_fail 1 "$EVFSCTL_BIN" fsck > "$T/out"
grep -q "backup b1: its file .*$B1.evb is missing" "$T/out" || { cat "$T/out"; die "missing backup file"; }
mv "$T/b1.evb" "$STORE/backups/$B1.evb"
ctl fsck >/dev/null || die "clean again"
ok "backups: an orphan and a partial file are removed by --repair; a missing file is reported"

# 9. a key that is not Enabled: its objects are listed as not checked
ctl key create kd >/dev/null; ctl volume create kv --size 4M --encrypt --key kd >/dev/null
ctl key disable kd >/dev/null
ctl fsck > "$T/out" || die "unchecked objects alone are not problems"
grep -q "unchecked: volume kv: chunks not checked: .*Disabled" "$T/out" || { cat "$T/out"; die "unchecked"; }
expect_fail 1 "$EVFSCTL_BIN" fsck kv
ok "objects whose key is not Enabled are listed as not checked (exit 1 when named)"

# 10. a new lineage cut short between its catalog row and its pool's files
# (found by e2e_killctl under ASan): the half-made pool and the row go.
ctl volume create cut --size 1M --encrypt >/dev/null
CL=$(ctl --json volume show cut | jget lineage)
sqlite3 "$STORE/catalog.db" "DELETE FROM objects WHERE name = 'cut'"
rm -rf "$STORE/pools/$CL/maps" "$STORE/pools/$CL/data" "$STORE/pools/$CL/tags"
expect_fail 1 "$EVFSCTL_BIN" fsck
ctl fsck --repair > "$T/out" || { cat "$T/out"; die "--repair of a pool cut short"; }
[ ! -e "$STORE/pools/$CL" ] && ctl fsck >/dev/null || die "the half-made pool or its row survived --repair"
ok "a pool whose creation was cut short (no maps/, data, tags) and its lineage row are removed by --repair"
finish
