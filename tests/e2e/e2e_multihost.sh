#!/bin/bash
# e2e_multihost: one store shared by two hosts (issue 10): chunk pools in RADOS,
# catalog and key store in PostgreSQL.  Run by ctest under
# tests/cluster/both.sh (a throwaway Ceph and PostgreSQL on 127.0.0.1).  The
# two hosts are two store directories on this machine with their own
# [host] name, evfs.ini and mount, which is all a host has of its own.
# Checks: init with --postgresql keeps no catalog or key store in the
# directory and no password in evfs.ini; a second init on the same schema,
# a join with the wrong root key or schema are refused and write nothing;
# a volume made and written on host A is listed and reads back the same on
# host B; a volume is attached on one host at a time (the catalog refuses
# host B, and B's commands on A's volume are refused naming A) but a
# snapshot or backup asked on B is taken on A, with A's writes; a key
# disabled on A refuses attach on B; each mount re-attaches only its own
# volumes; the pool's RADOS writer lock keeps a second host out while the
# first has it open, and is taken over from a killed mount of the same
# host; the objects and the database hold no plaintext; a hung host
# (SIGSTOP) keeps its volume until its lease runs out, then attach --steal
# fences it and its late write fails without landing; a dead host's volume
# is freed with detach --force, which fences that host too.
. "$(dirname "$0")/lib.sh"
: "${EVFS_CEPH_CONF:?run under tests/cluster/both.sh}" "${EVFS_CEPH_POOL:?}" "${EVFS_PG_CONNINFO_PASSFILE:?}"
PGI=$EVFS_PG_CONNINFO_PASSFILE
A=$T/host-a B=$T/host-b MNT_B=$T/mnt-b
mkdir -p "$MNT_B"
# The mounts this test started, by PID ($T/pids): a stopped one (SIGSTOP
# below) is continued first, then both mount points are unmounted (lazily
# if they must) and what still runs of ours is stopped.
extra_cleanup() {
  local p
  for p in $(cat "$T/pids" 2>/dev/null); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$T/" && kill -CONT "$p" 2>/dev/null
  done
  for m in "$MNT" "$MNT_B"; do
    if mountpoint -q "$m"; then fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; fi
  done
  for p in $(cat "$T/pids" 2>/dev/null); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$T/" && kill -TERM "$p" 2>/dev/null
  done
  return 0
}
trap 'extra_cleanup; cleanup' EXIT
ctla() { "$EVFSCTL_BIN" --store "$A" "$@"; }
ctlb() { "$EVFSCTL_BIN" --store "$B" "$@"; }
# mount_on DIR MNT / umount_on DIR MNT: like mnt/umnt of lib.sh for either host.
mount_on() {
  "$EVFS_BIN" "$1" "$2"
  for _ in $(seq 50); do mountpoint -q "$2" && { pgrep -f "evfs $1 $2" >>"$T/pids"; return 0; }; sleep 0.1; done
  die "mount of $1 did not appear"
}
umount_on() { fusermount3 -u "$2"; for _ in $(seq 100); do mountpoint -q "$2" || pgrep -f "evfs $1 $2" >/dev/null || return 0; sleep 0.1; done; die "mount of $1 did not go"; }
psql_q() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$PGI" -c "$1"; }

# --- host A makes the store ---------------------------------------------
"$EVFSCTL_BIN" --store "$A" init --keyfile "$T/root.key" --rados-conf "$EVFS_CEPH_CONF" \
  --rados-pool "$EVFS_CEPH_POOL" --postgresql "$PGI" --host host-a >"$T/out"
cat "$T/out"
S=$(sed -n 's/^schema = //p' "$A/evfs.ini")
[ -n "$S" ] || die "evfs.ini of host A has no [catalog] schema"
grep -q "store name $S" "$T/out" || die "init did not print the store's name $S"
grep -q '^backend = postgresql$' "$A/evfs.ini" && grep -q '^store = postgresql$' "$A/evfs.ini" ||
  die "evfs.ini does not put the catalog and the key store in PostgreSQL"
! grep -qi 'password *=' "$A/evfs.ini" || die "evfs.ini holds a password"
[ ! -e "$A/catalog.db" ] && [ ! -e "$A/kms.db" ] || die "a PostgreSQL store made SQLite files in its directory"
[ "$(psql_q "SELECT count(*) FROM pg_namespace WHERE nspname IN ('${S}_catalog', '${S}_kms')")" = 2 ] ||
  die "schemas ${S}_catalog and ${S}_kms are not in the database"
ok "init --postgresql: catalog and key store in schemas ${S}_catalog/_kms, evfs.ini without a password"

expect_fail 1 "$EVFSCTL_BIN" --store "$T/again" init --keyfile "$T/root.key" --rados-conf "$EVFS_CEPH_CONF" \
  --rados-pool "$EVFS_CEPH_POOL" --postgresql "$PGI" --schema "$S"
grep -q "already holds an evfs store" "$T/err" && grep -q -- "--join" "$T/err" || die "second init: no clear message"
[ ! -e "$T/again/evfs.ini" ] || die "a refused init wrote evfs.ini"
ok "a second init on the same schema is refused, pointing at --join"

# --- host B joins ----------------------------------------------------------
head -c 32 /dev/urandom >"$T/wrong.key"
expect_fail 1 "$EVFSCTL_BIN" --store "$B" init --join --keyfile "$T/wrong.key" --rados-conf "$EVFS_CEPH_CONF" \
  --postgresql "$PGI" --schema "$S" --host host-b
grep -q "not the root key the store was made with" "$T/err" || die "join with a wrong root key: no clear message"
[ ! -e "$B/evfs.ini" ] || die "a refused join wrote evfs.ini"
expect_fail 1 "$EVFSCTL_BIN" --store "$B" init --join --keyfile "$T/root.key" --rados-conf "$EVFS_CEPH_CONF" \
  --postgresql "$PGI" --schema evfs_nosuchstore --host host-b
grep -q "no evfs store in that schema" "$T/err" || die "join of a missing schema: no clear message"
[ ! -e "$B/evfs.ini" ] || die "a refused join wrote evfs.ini"
ok "join with the wrong root key or schema is refused and writes nothing"

cp "$T/root.key" "$T/root-b.key"        # host B's copy of the store's root key
"$EVFSCTL_BIN" --store "$B" init --join --keyfile "$T/root-b.key" --rados-conf "$EVFS_CEPH_CONF" \
  --postgresql "$PGI" --schema "$S" --host host-b >/dev/null
for k in namespace pool region; do
  [ "$(grep "^$k = " "$A/evfs.ini")" = "$(grep "^$k = " "$B/evfs.ini")" ] || die "host B's $k differs from A's"
done
grep -q '^name = host-b$' "$B/evfs.ini" || die "evfs.ini of B does not name host-b"
# Short leases, so that a hung host's volumes can be taken within the test.
sed -i 's/^lease = .*/lease = 10/' "$A/evfs.ini" "$B/evfs.ini"
ok "host B joins: pool, namespace and region come from the catalog"

# --- a volume made on A, written on A, read on B -------------------------
ctla kms grant >/dev/null
sed -i "s|^log_file =.*|log_file = $T/evfs.log|" "$A/evfs.ini"
sed -i "s|^log_file =.*|log_file = $T/evfs-b.log|" "$B/evfs.ini"
ctla key create k1 >/dev/null
ctla volume create v1 --size 64M --encrypt --key k1 >/dev/null
ctlb volume list >"$T/list"
grep -q '^v1 ' "$T/list" || die "host B does not list v1: $(cat "$T/list")"
ok "a volume created on host A is listed on host B"

python3 -c "import sys; open(sys.argv[1], 'wb').write((b'EVFS-PLAINTEXT-MARKER-0123456789\\n' * 200000)[:4 << 20])" "$T/pat"
mount_on "$A" "$MNT"
ctla attach v1 >/dev/null
dd if="$T/pat" of="$MNT/volumes/v1" bs=1M conv=fsync,notrunc status=none
[ "$(ctlb --json volume show v1 | jget attached)" = elsewhere ] || die "B does not see v1 attached elsewhere"
[ "$(ctlb --json volume show v1 | jget host)" = host-a ] || die "B does not see v1 attached on host-a"
ok "4 MiB written on host A; host B sees v1 attached on host-a"

mount_on "$B" "$MNT_B"
expect_fail 1 ctlb attach v1
grep -q "attached on host host-a" "$T/err" || die "attach on B of A's volume: no clear message"
expect_fail 1 ctlb volume delete v1
grep -q "attached on host host-a" "$T/err" || die "delete on B of A's volume: no clear message"
ok "host B cannot attach or delete a volume attached on host A"

# A snapshot or backup asked on B is taken by A (RADOS notify on the
# pool's header), with A's acknowledged writes.
ctlb snapshot create v1 s-b >"$T/out"
grep -q "s-b" "$T/out" || die "snapshot on B of A's volume: no answer from A: $(cat "$T/out")"
cmp -n $((4 << 20)) "$T/pat" "$MNT/snapshots/s-b" || die "snapshot s-b (asked on B) lacks A's writes"
ctlb backup create v1 b-b >/dev/null
ctla backup verify b-b >/dev/null || die "backup b-b (asked on B, made on A) does not verify"
ok "a snapshot and a backup asked on host B are taken on host A, with its acknowledged writes"

cmp -n $((4 << 20)) "$T/pat" "$MNT/volumes/v1" || die "v1 does not read back on A"
ctla detach v1 >/dev/null
umount_on "$A" "$MNT"
ctlb attach v1 >/dev/null
cmp -n $((4 << 20)) "$T/pat" "$MNT_B/volumes/v1" || die "v1 on host B differs from what A wrote"
ok "detached on A, attached on B: v1 reads back on B what A wrote"

ctlb snapshot create v1 s1 >/dev/null
ctla snapshot list >"$T/list"
grep -q '^s1 ' "$T/list" || die "host A does not list the snapshot taken on B"
ok "a snapshot taken on host B is listed on host A"

# One KMS for the region: a key disabled on A cannot be used on B.
ctla volume create v3 --size 16M --encrypt --key k1 >/dev/null
ctla key disable k1 >/dev/null
expect_fail 1 ctlb attach v3
grep -q "Disabled" "$T/err" || die "attach on B with a key disabled on A: no clear message"
ctla key enable k1 >/dev/null
ctlb attach v3 >/dev/null
ctlb detach v3 >/dev/null
ok "a key disabled on host A refuses attach on host B; enabled again, B attaches"

# A mounts again: it re-attaches none of B's volumes, and its engine is
# kept out of the pool B holds (RADOS writer lock naming host-b).
mount_on "$A" "$MNT"
[ "$(ctla --json volume show v1 | jget attached)" = elsewhere ] || die "A re-attached host B's volume"
if cat "$MNT/snapshots/s1" >/dev/null 2>"$T/err"; then die "A read s1 while B holds its pool"; fi
grep -q "host host-b" "$T/evfs.log" || die "A's log does not name the host holding the pool: $(tail -3 "$T/evfs.log")"
ok "A's mount re-attaches none of B's volumes and cannot open the pool B holds (lock held by host-b)"

# --- at rest ---------------------------------------------------------------
NS=$(sed -n 's/^namespace = //p' "$A/evfs.ini")
rados_plain_scan "$NS"
[ "$N_DATA" -gt 0 ] || die "no data objects in namespace $NS"
pg_dump -a -n "${S}_catalog" -n "${S}_kms" "$PGI" >"$T/dump" 2>"$T/dump.err" || die "pg_dump failed: $(cat "$T/dump.err")"
! grep -q EVFS-PLAINTEXT "$T/dump" || die "the database holds plaintext"
! grep -qi "$(xxd -p -c 64 "$T/root.key")" "$T/dump" || die "the database holds the root key"
ok "$N_DATA data objects and the database dump hold neither plaintext nor the root key"

# --- a dead host -------------------------------------------------------------
# B's mount is killed: its lock stays, but B's next mount takes it over
# (same host, process gone: fenced and broken) and re-attaches v1.
pid=$(pgrep -f "evfs $B $MNT_B" | head -1)
kill -9 "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
umount -l "$MNT_B" 2>/dev/null || true
mount_on "$B" "$MNT_B"
for _ in $(seq 50); do [ "$(ctlb --json volume show v1 | jget attached)" = attached ] && break; sleep 0.2; done
[ "$(ctlb --json volume show v1 | jget attached)" = attached ] || die "B's new mount did not re-attach v1"
cmp -n $((4 << 20)) "$T/pat" "$MNT_B/volumes/v1" || die "v1 after B's mount was killed differs"
grep -q "took over the writer lock of host-b $pid " "$T/evfs-b.log" ||
  die "B's log does not say its new mount took over the dead mount's lock: $(tail -3 "$T/evfs-b.log")"
ok "a killed mount's pool lock is taken over by the host's next mount, which re-attaches v1"

# --- a host that hangs: lease, steal, fencing --------------------------------
# B's mount is stopped (SIGSTOP) with v1 attached, and a write to v1 queued
# behind it.  While B's lease lives, A cannot steal v1; once it ran out, A
# steals it (B is blocklisted), writes and fsyncs.  B is continued: its
# queued write fails and not one byte of it lands in v1.
python3 -c "import sys; open(sys.argv[1], 'wb').write((b'HOST-B-WOKE-UP-LATE-0123456789ab' * 40000)[:1 << 20])" "$T/late"
python3 -c "import sys; open(sys.argv[1], 'wb').write((b'HOST-A-STOLE-THE-VOLUME-01234567' * 40000)[:1 << 20])" "$T/stolen"
pid=$(pgrep -f "evfs $B $MNT_B" | head -1)
kill -STOP "$pid"
(if dd if="$T/late" of="$MNT_B/volumes/v1" bs=1M count=1 conv=notrunc,fsync status=none 2>"$T/late.err"
 then echo 0 >"$T/late.rc"; else echo 1 >"$T/late.rc"; fi) &
DD=$!
expect_fail 1 ctla attach v1 --steal
grep -q "still renews its lease" "$T/err" || die "steal while B's lease lives: no clear message"
sleep 11
ctla attach v1 --steal >/dev/null 2>"$T/err"
grep -q "lease ran out" "$T/err" || die "attach --steal gave no warning: $(cat "$T/err")"
grep -q "host host-b let its lease run out; its client is blocklisted" "$T/evfs.log" ||
  die "A's log does not say B was fenced: $(tail -3 "$T/evfs.log")"
dd if="$T/stolen" of="$MNT/volumes/v1" bs=1M count=1 conv=notrunc,fsync status=none
kill -CONT "$pid"
for _ in $(seq 100); do [ -s "$T/late.rc" ] && break; sleep 0.1; done
wait "$DD" 2>/dev/null || true
[ -s "$T/late.rc" ] || die "B's queued write never returned after SIGCONT"
[ "$(cat "$T/late.rc")" != 0 ] || die "B's write after it lost its lease succeeded"
cmp -n $((1 << 20)) "$T/stolen" "$MNT/volumes/v1" || die "v1's first MiB is not what A wrote after the steal"
cmp -i $((1 << 20)) -n $((3 << 20)) "$T/pat" "$MNT/volumes/v1" || die "v1 past 1 MiB lost what was fsynced before"
! grep -q HOST-B-WOKE "$MNT/volumes/v1" || die "B's late write landed in v1"
ok "a hung host: no steal while its lease lives; after, A steals v1 and B's late write fails without landing"
umount_on "$B" "$MNT_B"

# Host B dies for good with v2 attached and its pool locked: A frees v2
# with detach --force, which fences B's client off the pool, and attaches it.
mount_on "$B" "$MNT_B"
ctlb volume create v2 --size 16M --encrypt --key k1 >/dev/null
ctlb attach v2 >/dev/null
head -c $((2 << 20)) "$T/pat" >"$T/pat2"
dd if="$T/pat2" of="$MNT_B/volumes/v2" bs=1M conv=notrunc,fsync status=none
pid=$(pgrep -f "evfs $B $MNT_B" | head -1)
kill -9 "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
umount -l "$MNT_B" 2>/dev/null || true
expect_fail 1 ctla attach v2
grep -q "attached on host host-b since" "$T/err" || die "attach on A of dead B's volume: no clear message"
expect_fail 1 ctla detach v2
grep -q "attached on host host-b" "$T/err" || die "detach on A of B's volume: no clear message"
ctla detach v2 --force >/dev/null 2>"$T/err"
grep -q "must not be running" "$T/err" && grep -q "client fenced off the pool" "$T/err" ||
  die "detach --force of dead host B's volume: no warning of the fencing: $(cat "$T/err")"
ctla attach v2 >/dev/null
cmp -n $((2 << 20)) "$T/pat2" "$MNT/volumes/v2" || die "v2 on A after the forced detach differs"
ok "a dead host's volume: detach --force on another host fences it off the pool; that host attaches it"
ctla detach v1 >/dev/null
ctla detach v2 >/dev/null
umount_on "$A" "$MNT"
finish
