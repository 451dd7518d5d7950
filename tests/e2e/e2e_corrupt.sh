#!/usr/bin/env bash
# Hostile or damaged store files (issue 5, "hostile input"): a corrupted or
# truncated catalog.db, kms.db, evfs.ini, pool tag table, chunk map, backup
# file (header and body).  Each must give a clear error that names the file
# and says what to do, exit 1 or 2 (never a signal, never 0 while the object
# is unusable), damage nothing else (the other volumes still read their
# data through a live mount), and work again once the file is restored from
# a copy.
. "$(dirname "$0")/lib.sh"

# expect_refused WHAT PATTERN CMD...: CMD exits 1 or 2 (not a signal, not 0)
# and its output names PATTERN (the damaged file) and a remedy.
expect_refused() {
  local what=$1 pat=$2; shift 2
  set +e; "$@" >"$T/out" 2>"$T/err"; local rc=$?; set -e
  cat "$T/out" >>"$T/err"   # fsck reports on stdout
  [ "$rc" = 1 ] || [ "$rc" = 2 ] || { cat "$T/err"; die "$what: expected exit 1 or 2 from '$*', got $rc"; }
  grep -qF -- "$pat" "$T/err" || { cat "$T/err"; die "$what: the error does not name $pat"; }
  grep -qiE 'restore|fix|remove|copy|use |give |run ' "$T/err" || { cat "$T/err"; die "$what: the error says nothing to do"; }
  sed 's/^/    /' "$T/err" | head -3 | cut -c1-240
}

new_store
pool_format 1   # this test damages format 1 files (maps/, tags); format 2: e2e_corrupt2
# Mount log in the store, to check what the mount reports.
sed -i 's/^log_file =.*/log_file = mount.log/' "$STORE/evfs.ini"
ctl volume create v1 --size 8M --encrypt >/dev/null
ctl volume create v2 --size 8M --encrypt >/dev/null
ctl volume create v3 --size 8M >/dev/null
mnt
for v in v1 v2 v3; do
  ctl attach $v >/dev/null
  head -c 3M /dev/urandom | dd of="$MNT/volumes/$v" bs=1M seek=1 conv=notrunc,fsync status=none
done
declare -A SUM
for v in v1 v2 v3; do SUM[$v]=$(sha "$MNT/volumes/$v"); done
ctl backup create v1 b1 >/dev/null
ctl snapshot create v1 s1 >/dev/null
umnt
L1=$(show_field volume v1 lineage) ID1=$(show_field volume v1 id) B1=$(show_field backup b1 id)
POOL1=$STORE/pools/$L1 MAP1=$STORE/pools/$L1/maps/$ID1.map BK1=$STORE/backups/$B1.evb
[ -s "$MAP1" ] && [ -s "$POOL1/tags" ] && [ -s "$BK1" ] || die "store layout: $MAP1 $POOL1/tags $BK1"
cp -a "$STORE" "$T/good"
ok "store with three volumes (two encrypted), a snapshot and a backup; copy kept"

# others_ok [damaged]: mount, attach every volume but the damaged one (its
# attach must be refused naming the file), compare the others' data.
others_ok() {
  local bad=${1:-} pat=${2:-}
  mnt
  for v in v1 v2 v3; do
    if [ "$v" = "$bad" ]; then
      expect_refused "attach of damaged $v" "$pat" ctl attach "$v"
      ! head -c 4096 "$MNT/volumes/$v" >/dev/null 2>&1 || die "damaged $v readable through the mount"
      continue
    fi
    ctl attach "$v" >/dev/null 2>&1 || true   # re-attached at mount time already
    [ "$(sha "$MNT/volumes/$v")" = "${SUM[$v]}" ] || die "volume $v reads wrong data (damage elsewhere: $bad)"
  done
  umnt
}
restore() { cp -a "$T/good/$1" "$STORE/$1"; }

# ---- evfs.ini -----------------------------------------------------------
cp "$STORE/evfs.ini" "$T/ini"
printf 'this is not a key = value line\n[nosuch]\n' >>"$STORE/evfs.ini"
expect_refused "evfs.ini bad line" "evfs.ini:" ctl volume list
expect_refused "evfs.ini bad line (mount)" "evfs.ini:" "$EVFS_BIN" "$STORE" "$MNT"
cp "$T/ini" "$STORE/evfs.ini"
sed -i 's/^chunk_size = .*/chunk_size = 3000/' "$STORE/evfs.ini"
expect_refused "evfs.ini bad value" "chunk_size" ctl volume list
head -c 200 "$T/ini" >"$STORE/evfs.ini"
expect_refused "evfs.ini truncated" "evfs.ini" ctl volume list
cp "$T/ini" "$STORE/evfs.ini"; printf '\x01\xff garbage\n' >>"$STORE/evfs.ini"
expect_refused "evfs.ini garbage" "evfs.ini:" ctl volume list
cp "$T/ini" "$STORE/evfs.ini"
ctl volume list >/dev/null || die "restored evfs.ini"
ok "evfs.ini with a bad line, a bad value or garbage: error names file:line and the fix; restored file works"

# ---- catalog.db and kms.db -----------------------------------------------
for db in catalog.db kms.db; do
  head -c 1500 "$T/good/$db" >"$STORE/$db"
  expect_refused "$db truncated" "$db" ctl volume list
  expect_refused "$db truncated (mount)" "$db" "$EVFS_BIN" "$STORE" "$MNT"
  mountpoint -q "$MNT" && die "mounted a store with a truncated $db"
  restore $db
  head -c 100 /dev/urandom | dd of="$STORE/$db" bs=1 conv=notrunc status=none
  expect_refused "$db header garbage" "$db" ctl volume list
  restore $db
done
[ "$(ctl volume list | grep -c '^v[123] ')" = 3 ] || die "volume list after restoring the databases"
others_ok
ok "catalog.db / kms.db truncated or with a garbage header: refused naming the file; restored: all volumes read"

# ---- pool tag table (lineage of v1, shared with snapshot s1) --------------
printf 'EVILEVIL' | dd of="$POOL1/tags" bs=1 seek=0 conv=notrunc status=none
expect_refused "tags header" "$POOL1/tags" ctl snapshot create v1 s2
set +e; ctl fsck v1 >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || die "fsck of v1 with a damaged tag table exited $rc, not 1"
others_ok v1 "$POOL1/tags"
restore "pools/$L1/tags"
truncate -s 100 "$POOL1/tags"
others_ok v1 "$POOL1/tags"
restore "pools/$L1/tags"
truncate -s $((4096 + 64)) "$POOL1/tags"   # one tag entry left: the maps point past it
others_ok v1 "$POOL1/tags"
restore "pools/$L1/tags"
ok "damaged / truncated pool tag table: v1 refused naming the file, v2 and v3 still read correctly"

# ---- chunk map of v1 ----------------------------------------------------
printf 'X' | dd of="$MAP1" bs=1 seek=40 conv=notrunc status=none
expect_refused "map header" "$ID1.map" ctl image create v1 i1
others_ok v1 "$ID1.map"
grep -qF "$ID1.map" "$STORE/mount.log" || die "the mount did not log the damaged map"
restore "pools/$L1/maps/$ID1.map"
truncate -s 5000 "$MAP1"
others_ok v1 "$ID1.map"
restore "pools/$L1/maps/$ID1.map"
others_ok
mnt
ctl attach v1 >/dev/null 2>&1 || true
[ "$(sha "$MNT/volumes/v1")" = "${SUM[v1]}" ] || die "v1 after restoring its files"
cmp -s "$MNT/snapshots/s1" "$MNT/volumes/v1" || die "snapshot s1 after restoring the files"
umnt
ok "damaged / truncated chunk map: refused naming the map (mount logs it), others fine; restored: v1 and s1 read"

# ---- backup file --------------------------------------------------------
printf 'XXXX' | dd of="$BK1" bs=1 seek=100 conv=notrunc status=none
set +e; ctl backup verify b1 >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 1 ] || die "backup verify of a damaged backup exited $rc, not 1"
expect_refused "backup header (restore)" "$B1.evb" ctl volume create r1 --from-backup b1
ctl volume show r1 >/dev/null 2>&1 && die "a volume was created from a damaged backup"
restore "backups/$B1.evb"
sz=$(stat -c %s "$BK1")
truncate -s $((sz - 10)) "$BK1"
expect_refused "backup truncated" "$B1.evb" ctl volume create r1 --from-backup b1
restore "backups/$B1.evb"
printf 'XXXX' | dd of="$BK1" bs=1 seek=$((4096 + 5000)) conv=notrunc status=none   # a chunk record
set +e; ctl backup verify b1 >"$T/out" 2>"$T/err"; rc=$?; set -e
[ "$rc" = 1 ] && grep -q "bad chunk" "$T/out" || { cat "$T/out" "$T/err"; die "backup body damage not reported (rc $rc)"; }
expect_refused "backup body (restore)" "$B1.evb" ctl volume create r1 --from-backup b1
ctl volume show r1 >/dev/null 2>&1 && die "a volume was created from a damaged backup"
restore "backups/$B1.evb"
ctl backup verify b1 >/dev/null || die "restored backup does not verify"
ctl volume create r1 --from-backup b1 >/dev/null || die "restore from the restored backup"
others_ok
ok "damaged / truncated backup header and body: verify and restore refuse naming the file; restored copy works"

finish
