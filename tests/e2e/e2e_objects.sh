#!/usr/bin/env bash
# Snapshots, backups and images with the encryption inheritance rules
# R1-R9, R23-R25, compared byte for byte through a live mount.
. "$(dirname "$0")/lib.sh"
new_store
ctl key create ka >/dev/null; ctl key create kb >/dev/null
ctl volume create v --size 32M --encrypt --key kb >/dev/null
ctl volume create p --size 16M >/dev/null
mnt; ctl attach v >/dev/null; ctl attach p >/dev/null
head -c 8M /dev/urandom > "$T/a"; dd if="$T/a" of="$MNT/volumes/v" conv=notrunc,fsync status=none
dd if="$T/a" of="$MNT/volumes/p" bs=1M count=4 conv=notrunc,fsync status=none
key() { ctl --json "$1" show "$2" | jget key; }
enc() { ctl --json "$1" show "$2" | jget encrypted; }
KB=$(key volume v); KA=$(ctl --json key show ka | jget key.id)
# R8, R24: snapshot is CoW, frozen while the volume changes
ctl snapshot create v s1 >/dev/null
[ "$(key snapshot s1)" = "$KB" ] && [ "$(enc snapshot s1)" = true ] || die "R8"
cp "$MNT/volumes/v" "$T/v_at_s1"
head -c 1M /dev/urandom | dd of="$MNT/volumes/v" conv=notrunc,fsync status=none
cmp "$MNT/snapshots/s1" "$T/v_at_s1" || die "snapshot content changed"
! cmp -s "$MNT/volumes/v" "$T/v_at_s1" || die "volume did not change"
ok "R8/R24: snapshot keeps the volume's key and stays frozen while the volume changes"
# R24: a snapshot's space follows the data written, not the nominal size
ctl volume create huge --size 100G --encrypt >/dev/null; ctl attach huge >/dev/null
head -c 1M /dev/urandom | dd of="$MNT/volumes/huge" bs=1M seek=51200 conv=notrunc,fsync status=none
HL=$(ctl --json volume show huge | jget lineage)
# Metadata of the pool, format 1 or 2 alike: everything but the chunks.
meta_kib() { rest_kib "$HL" data; }
m0=$(meta_kib); ctl snapshot create huge hsnap >/dev/null
m1=$(meta_kib)
[ $((m1 - m0)) -le 64 ] || die "R24: snapshot of a 100 GiB volume with 1 MiB written took $((m1 - m0)) KiB of maps"
cmp -n 1048576 -i 53687091200 "$MNT/snapshots/hsnap" "$MNT/volumes/huge" || die "R24 content"
ctl detach huge >/dev/null; ctl snapshot delete hsnap >/dev/null; ctl volume delete huge >/dev/null
ok "R24: snapshotting a 100 GiB thin volume with 1 MiB written adds $((m1 - m0)) KiB of map (time: tests/bench)"
# R5: volume from snapshot
ctl volume create vs --from-snapshot s1 >/dev/null; ctl attach vs >/dev/null
[ "$(key volume vs)" = "$KB" ] || die "R5 key"; cmp "$MNT/volumes/vs" "$T/v_at_s1" || die "R5 content"
expect_fail 1 "$EVFSCTL_BIN" volume create vx --from-snapshot s1 --encrypt --key ka
ok "R5: a volume from a snapshot has the snapshot's content, encryption and key"
# rollback
ctl detach v >/dev/null; ctl volume rollback v --snapshot s1 >/dev/null; ctl attach v >/dev/null
cmp "$MNT/volumes/v" "$T/v_at_s1" || die "rollback"
ok "rollback restores the snapshot's bytes"
# R7, R25, R4: backups, incremental, restore with another choice
ctl backup create v b1 >/dev/null
[ "$(key backup b1)" = "$KB" ] || die "R7"
dd if=/dev/urandom of="$MNT/volumes/v" bs=4k count=3 seek=100 conv=notrunc,fsync status=none
cp "$MNT/volumes/v" "$T/v_at_b2"
ctl backup create v b2 --incremental >/dev/null
st1=$(ctl --json backup show b1 | jget stored_bytes)
st2=$(ctl --json backup show b2 | jget stored_bytes)
[ "$st2" -le $((3 * 4096)) ] && [ "$st1" -ge $((8 * 1048576)) ] || die "incremental stored $st2 (full $st1)"
cmp "$MNT/backups/b2" "$T/v_at_b2" || die "backup file content"
ok "R7/R25: backups keep the key; the incremental stores only the 3 changed chunks ($st2 bytes) and reads back exactly"
ctl volume create r1 --from-backup b2 >/dev/null
ctl volume create r2 --from-backup b2 --no-encrypt >/dev/null
ctl volume create r3 --from-backup b2 --encrypt --key ka >/dev/null
[ "$(key volume r1)" = "$KB" ] && [ "$(enc volume r2)" = false ] && [ "$(key volume r3)" = "$KA" ] || die "R4"
for r in r1 r2 r3; do ctl attach $r >/dev/null; cmp "$MNT/volumes/$r" "$T/v_at_b2" || die "restore $r"; done
ok "R4: restores keep the backup's key or take the user's choice, and equal the backup byte for byte"
ctl backup delete b1 >/dev/null
cmp "$MNT/backups/b2" "$T/v_at_b2" || die "chain broken by deleting b1"
ok "R25: deleting the first backup of a chain keeps the incremental restorable"
dd if=/dev/urandom of="$MNT/volumes/v" bs=4k count=2 seek=300 conv=notrunc,fsync status=none
ctl backup create v b3 --incremental >/dev/null; ctl backup delete b3 >/dev/null
ctl backup create v b4 --incremental >/dev/null
cmp "$MNT/backups/b4" "$MNT/volumes/v" || die "incremental after deleting the newest backup"
ok "R25: after the newest backup is deleted, the next incremental builds on the newest remaining one"
# R9, R6, R3: images
ctl image create v ie >/dev/null; ctl image create p ip >/dev/null
[ "$(enc image ie)" = true ] || die "R9 encrypted image"
expect_fail 1 "$EVFSCTL_BIN" image export ie "$T/x.img"
! cat "$MNT/images/ie" >/dev/null 2>&1 || die "encrypted image must not be readable"
mkdir -p "$T/st2"; EVFS_STORE=$T/st2 ctl init --keyfile "$T/root2.key" --region region-2 >/dev/null
expect_fail 1 "$EVFSCTL_BIN" image replicate ie --to-store "$T/st2"
expect_fail 1 "$EVFSCTL_BIN" image copy ie ie2 --no-encrypt
ok "R9: encrypted images cannot be exported, read, replicated or made unencrypted"
ctl image export ip "$T/ip.raw" >/dev/null; cmp "$T/ip.raw" "$MNT/volumes/p" || die "export"
ctl image copy ip ipe --encrypt --key ka >/dev/null; [ "$(key image ipe)" = "$KA" ] || die "R9 copy"
ok "R9: unencrypted images export exactly and copy into encrypted images"
ctl volume create d1 --from-image ie >/dev/null; [ "$(key volume d1)" = "$KB" ] || die "R6"
ctl volume create sA --from-image ie --type system --encrypt --key ka >/dev/null
ctl volume create sB --from-image ip --type system --encrypt --key ka >/dev/null
ctl volume create sC --from-image ie --type system >/dev/null
ctl volume create sD --from-image ip --type system >/dev/null
[ "$(key volume sA)" = "$KA" ] && [ "$(key volume sB)" = "$KA" ] && [ "$(key volume sC)" = "$KB" ] && \
  [ "$(enc volume sD)" = false ] || die "R3 table"
for vv in d1 sA sC; do ctl attach $vv >/dev/null; cmp "$MNT/volumes/$vv" "$MNT/volumes/v" || die "content $vv"; done
ok "R6 and R3's table: data and system volumes from images get the right encryption, key and content"
# R1: immutable everywhere
! setfattr -n user.evfs.key -v x "$MNT/volumes/v" 2>/dev/null || die "xattr write"
cat_sql "UPDATE objects SET encrypted=0 WHERE name='v'" 2>"$T/err" && die "trigger must refuse"
grep -q "encryption attribute is immutable" "$T/err" || die "the catalog refused for another reason: $(cat "$T/err")"
[ "$(enc volume v)" = true ] || die "R1"
ok "R1: the encryption attribute is immutable (xattr, catalog trigger)"
# R23: extend, never shrink; delete returns space
ctl volume extend p --size 32M >/dev/null; sleep 1.5; [ "$(stat -c %s "$MNT/volumes/p")" = 33554432 ] || die "extend"
expect_fail 1 "$EVFSCTL_BIN" volume extend p --size 8M
ok "R23: volumes extend, never shrink"
# Deletion rules: objects are independent; space goes back when the last sharer goes.
ctl volume create big --size 64M --encrypt >/dev/null; ctl attach big >/dev/null
head -c 32M /dev/urandom > "$T/big0"; dd if="$T/big0" of="$MNT/volumes/big" bs=1M conv=notrunc,fsync status=none
kib() { sync; rest_kib; }
ctl snapshot create big sbig >/dev/null; u0=$(kib)
head -c 32M /dev/urandom > "$T/big1"; dd if="$T/big1" of="$MNT/volumes/big" bs=1M conv=notrunc,fsync status=none
u1=$(kib); [ $((u1 - u0)) -ge 30000 ] || die "CoW: overwriting 32 MiB under a snapshot grew the store by $((u1 - u0)) KiB"
ctl snapshot delete sbig >/dev/null; u2=$(kib)
[ $((u1 - u2)) -ge 30000 ] || die "deleting the snapshot gave back only $((u1 - u2)) KiB of 32 MiB"
cmp -n 33554432 "$MNT/volumes/big" "$T/big1" || die "volume changed by deleting its snapshot"
ok "snapshot delete gives back its unshared chunks (du: +$((u1 - u0)) KiB on overwrite, -$((u1 - u2)) KiB on delete)"
ctl snapshot create big sbig2 >/dev/null; ctl volume create fromsnap --from-snapshot sbig2 >/dev/null
ctl image create big ibig >/dev/null; ctl volume create fromimg --from-image ibig >/dev/null
ctl detach big >/dev/null; ctl volume delete big >/dev/null
cmp -n 33554432 "$MNT/snapshots/sbig2" "$T/big1" || die "snapshot lost with its volume"
ctl snapshot delete sbig2 >/dev/null; ctl image delete ibig >/dev/null
for vv in fromsnap fromimg; do ctl attach $vv >/dev/null; cmp -n 33554432 "$MNT/volumes/$vv" "$T/big1" || die "$vv"; done
u3=$(kib); [ $((u2 - u3)) -lt 4096 ] || die "shared chunks were freed while volumes still use them"
ctl detach fromsnap >/dev/null; ctl volume delete fromsnap >/dev/null
ctl detach fromimg >/dev/null; ctl volume delete fromimg >/dev/null
u4=$(kib); [ $((u3 - u4)) -ge 30000 ] || die "deleting the last users gave back only $((u3 - u4)) KiB"
expect_fail 1 "$EVFSCTL_BIN" volume delete v
grep -q "detach it first" "$T/err" || die "deleting an attached volume must say to detach it first"
ok "deleting a volume keeps its snapshots/images; deleting those keeps volumes made from them; the last user frees the space"
# Progress: a bar with rate and ETA on a terminal, none otherwise or with --json (forwarded to the mount here).
on_tty "$EVFSCTL_BIN" backup create v bp > "$T/tty1"
grep -q 'bp \[#*' "$T/tty1" && grep -q '100%.*MiB/s' "$T/tty1" || die "no progress bar on a terminal: $(cat "$T/tty1")"
on_tty "$EVFSCTL_BIN" volume create rp --from-backup bp --no-encrypt > "$T/tty2"
grep -q 'rp \[#*.*100%.*MiB/s' "$T/tty2" || die "no progress bar for a restore"
on_tty "$EVFSCTL_BIN" image export ip "$T/ip2.raw" > "$T/tty3"
grep -q 'ip \[#*.*100%' "$T/tty3" || die "no progress bar for an export"
on_tty "$EVFSCTL_BIN" --json backup create v bj > "$T/tty4"
ctl backup create v bn 2> "$T/nontty" >/dev/null
! grep -q 'MiB/s' "$T/tty4" "$T/nontty" || die "progress bar with --json or without a terminal"
umnt; on_tty "$EVFSCTL_BIN" backup create v bl > "$T/tty5"
grep -q 'bl \[#*.*100%.*MiB/s' "$T/tty5" || die "no progress bar when evfsctl runs the store itself"
ok "progress bars with rate and ETA on a terminal (backup, restore, export; mounted or not), none with --json or off a terminal"
finish
