#!/usr/bin/env bash
# evfsctl upgrade: format 1 pools (a map file per volume) converted to
# format 2 (copy-on-write map trees) in place.  Refused while mounted; on
# the unmounted store every volume, snapshot and image reads the same bytes
# afterwards, no format 1 file is left, fsck is clean, and new snapshots
# share the map instead of copying it.
. "$(dirname "$0")/lib.sh"

new_store
pool_format 1
ctl volume create v --size 64M --encrypt >/dev/null
ctl volume create p --size 16M >/dev/null
mnt
ctl attach v >/dev/null; ctl attach p >/dev/null
head -c 20M /dev/urandom | dd of="$MNT/volumes/v" bs=1M seek=3 conv=notrunc,fsync status=none
head -c 5M /dev/urandom | dd of="$MNT/volumes/p" bs=1M conv=notrunc,fsync status=none
ctl snapshot create v s1 >/dev/null
head -c 1M /dev/urandom | dd of="$MNT/volumes/v" bs=1M seek=4 conv=notrunc,fsync status=none
ctl image create p img >/dev/null
declare -A SUM
SUM[v]=$(sha "$MNT/volumes/v"); SUM[p]=$(sha "$MNT/volumes/p"); SUM[s1]=$(sha "$MNT/snapshots/s1")
SUM[img]=$(sha "$MNT/images/img")
expect_fail 1 "$EVFSCTL_BIN" upgrade
grep -q "the store is mounted: unmount it" "$T/err" || die "upgrade of a mounted store: $(cat "$T/err")"
umnt
L=$(show_field volume v lineage)
[ -d "$STORE/pools/$L/maps" ] && [ ! -e "$STORE/pools/$L/roots" ] || die "format 1 pool expected before the upgrade"
ok "format 1 store: two volumes, a snapshot, an image; upgrade refused while mounted, naming the remedy"

on_tty "$EVFSCTL_BIN" upgrade >"$T/out" || die "upgrade: $(cat "$T/out")"
grep -Eq "upgrade pool ${L:0:8} \[#*.*100%" "$T/out" || die "no progress bar for the upgrade: $(cat "$T/out")"
grep -q "pool $L: upgraded to format 2 (2 map(s))" "$T/out" || die "upgrade output: $(cat "$T/out")"
grep -q "2 pool(s) upgraded to format 2, 0 already format 2" "$T/out" || die "upgrade summary: $(cat "$T/out")"
for d in "$STORE"/pools/*/; do
  [ -s "$d/roots" ] && [ ! -e "$d/maps" ] && [ ! -e "$d/tags" ] || die "pool $d not format 2 after the upgrade"
done
ctl upgrade >"$T/out2" && grep -q "0 pool(s) upgraded to format 2, 2 already format 2" "$T/out2" ||
  die "a second upgrade: $(cat "$T/out2")"
ok "upgrade converts both pools with a progress bar each (roots, no maps/ or tags left); a second run finds nothing to do"

mnt
ctl attach v >/dev/null 2>&1 || true; ctl attach p >/dev/null 2>&1 || true
for n in v p; do [ "$(sha "$MNT/volumes/$n")" = "${SUM[$n]}" ] || die "volume $n reads differently after the upgrade"; done
[ "$(sha "$MNT/snapshots/s1")" = "${SUM[s1]}" ] || die "snapshot s1 reads differently after the upgrade"
[ "$(sha "$MNT/images/img")" = "${SUM[img]}" ] || die "image img reads differently after the upgrade"
m0=$(du -sk --exclude=data --exclude=journal "$STORE/pools/$L" | cut -f1)
for i in 1 2 3 4 5; do ctl snapshot create v "n$i" >/dev/null; done
m1=$(du -sk --exclude=data --exclude=journal "$STORE/pools/$L" | cut -f1)
[ $((m1 - m0)) -le 16 ] || die "5 snapshots after the upgrade took $((m1 - m0)) KiB of maps"
head -c 1M /dev/urandom | dd of="$MNT/volumes/v" bs=1M seek=10 conv=notrunc,fsync status=none
[ "$(sha "$MNT/snapshots/n3")" = "${SUM[v]}" ] || die "a snapshot taken after the upgrade changed with its volume"
ctl fsck >"$T/fsck" 2>&1 || { cat "$T/fsck"; die "fsck after the upgrade"; }
umnt
ok "after the upgrade: every object reads its bytes, 5 new snapshots add $((m1 - m0)) KiB of map, fsck is clean"
finish
