#!/usr/bin/env bash
# Slips of an operator's hand (the operator issue, bugs 1, 2 and 4-8): each
# is refused with words that say what was wrong and what to do, and changes
# nothing; the mount warns before it goes to the background.
#   1  init / volume list on a path that is a regular file
#   2  a refused second mount leaves the first one's name in the lock file
#   4  init --chunk-size/--region, key files of the wrong kind, --size 0 and
#      beyond the maximum, over-long arguments on an unmounted store (exit 2)
#   5  a NUL byte or binary garbage in evfs.ini (shown escaped)
#   6  an unwritable log_file (said on stderr), SEEK_DATA past the data (no
#      warning in the log)
#   7  freed space waiting for reuse is bounded in bytes (64 KiB chunks)
#   8  sizes not a multiple of 512, key files inside the store or readable by
#      others (warned), passphrases of two characters
. "$(dirname "$0")/lib.sh"
M8=$T/m8
operator_cleanup() {
  set +e
  if mountpoint -q "$M8"; then fusermount3 -u "$M8" || umount -l "$M8"; fi
  pkill -f "evfs $T/s8 " 2>/dev/null
  cleanup
}
trap operator_cleanup EXIT

# expect_msg CODE TEXT... CMD: run CMD (after --), want exit CODE and every
# TEXT in its stderr.
expect_msg() {
  local code=$1; shift
  local want=()
  while [ "$1" != -- ]; do want+=("$1"); shift; done
  shift
  expect_fail "$code" "$@"
  for w in "${want[@]}"; do grep -qF -- "$w" "$T/err" || die "expected '$w' from: $*"; done
}

# --- 1: a store path that is a regular file ------------------------------
echo "just a file" >"$T/afile"; chmod 0644 "$T/afile"
expect_msg 1 "is not a directory" -- ctl --store "$T/afile" init --keyfile "$T/k1"
[ "$(cat "$T/afile")" = "just a file" ] && [ "$(stat -c %a "$T/afile")" = 644 ] || die "init changed the file"
expect_msg 1 "is not a directory" -- ctl --store "$T/afile" volume list
grep -q "evfsctl init --store" "$T/err" && die "volume list suggested init on a file"
ok "init and volume list on a regular file: 'is not a directory', the file untouched"

# --- 4 and 8: init options and key sources --------------------------------
expect_msg 1 "chunk_size" "power of two" -- ctl --store "$T/s1" init --keyfile "$T/k1" --chunk-size 1000
expect_msg 1 "region" "1 to 63 characters" -- ctl --store "$T/s1" init --keyfile "$T/k1" --region 'a b'
[ ! -e "$T/s1" ] || die "a refused init left $T/s1"
head -c 17 /dev/urandom >"$T/short.key"
expect_msg 1 "has 17 bytes" "exactly 32" -- ctl --store "$T/s2" init --keyfile "$T/short.key"
mkdir "$T/keydir"
expect_msg 1 "is a directory" -- ctl --store "$T/s3" init --keyfile "$T/keydir"
: >"$T/empty.pass"
expect_msg 1 "is empty" -- ctl --store "$T/s4" init --passphrase-file "$T/empty.pass"
echo ab >"$T/two.pass"
expect_msg 1 "8 to 4095 characters" -- ctl --store "$T/s5" init --passphrase-file "$T/two.pass"
for d in s2 s3 s4 s5; do [ ! -e "$T/$d/evfs.ini" ] || die "a refused init left $d/evfs.ini"; done
ok "init: chunk size, region, key file length, directory, empty and short passphrase named"

mkdir "$T/s6"
ctl --store "$T/s6" init --keyfile "$T/s6/inside.key" 2>"$T/err" >/dev/null || die "init with the key inside"
grep -q "inside the store directory" "$T/err" || die "no warning for a key file inside the store"
head -c 32 /dev/urandom >"$T/open.key"; chmod 0644 "$T/open.key"
ctl --store "$T/s7" init --keyfile "$T/open.key" 2>"$T/err" >/dev/null || die "init with a 0644 key"
grep -q "readable or writable by others" "$T/err" || die "no warning for a key file readable by others"
ok "init warns about a key file inside the store and one readable by others"

# --- the main store -------------------------------------------------------
new_store
expect_msg 1 "at least 512 bytes" -- ctl volume create z --size 0
expect_msg 1 "larger than the largest volume" -- ctl volume create z --size 16P
expect_msg 1 "not a multiple of 512" -- ctl volume create z --size 1000
long=$(head -c 5000 /dev/zero | tr '\0' a)
expect_msg 2 "bytes long" -- ctl volume create "$long" --size 1M
ctl volume list --json | jget '*.name' | grep -q . && die "a refused create left a volume"
ok "volume sizes 0, 16P and 1000 refused with the reason; a 5000-byte name is a usage error (exit 2)"

# --project after the command is the command's project (it was ignored:
# 'volume delete dv --project p3' deleted the default project's dv)
ctl volume create dv --size 1M >/dev/null; ctl --project p3 volume create dv --size 1M >/dev/null
ctl volume delete dv --project p3 >/dev/null
ctl --json volume list | jget '*.name' | grep -qx dv || die "--project after the command deleted the default project's volume"
ctl --project p3 --json volume list | jget '*.name' | grep -qx dv && die "p3's dv was not deleted"
ctl volume delete dv >/dev/null
ok "--project after the command selects the project, as before it"

# --- 5: NUL bytes and garbage in evfs.ini ---------------------------------
cp "$STORE/evfs.ini" "$T/ini.good"
printf '[store]\nregion = re\000gion\n' >"$T/ini.nul"
cp "$T/ini.nul" "$STORE/evfs.ini"
expect_msg 1 "NUL byte" -- ctl volume list
printf '[store]\nregion = \377\376\033[31mred\n' >"$STORE/evfs.ini"
expect_fail 1 ctl volume list
grep -q 'x1b' "$T/err" || die "the escape character was not shown escaped"
LC_ALL=C grep -q $'[\x80-\xff\x1b]' "$T/err" && die "raw binary bytes were echoed to the terminal"
cp "$T/ini.good" "$STORE/evfs.ini"
ok "evfs.ini: a NUL byte is refused by line, binary garbage is shown escaped"

# --- evfsctl right after evfs returns: the mount is listed before it serves
# its store; evfsctl waits for its control socket instead of running the
# command itself (attach then said "the store is not mounted", 8 of 20 here)
ctl volume create race --size 1M --encrypt >/dev/null
for i in $(seq 10); do
  "$EVFS_BIN" "$STORE" "$MNT"
  ctl attach race >/dev/null 2>"$T/err" || die "attach right after evfs (round $i): $(cat "$T/err")"
  ctl detach race >/dev/null
  umnt
done
ctl volume delete race >/dev/null
ok "evfsctl attach right after evfs returns reaches the mount (10 of 10)"

# --- 2: a refused second mount leaves the lock file alone -----------------
ctl volume create v --size 48M >/dev/null
mnt
expect_fail 1 "$EVFS_BIN" "$STORE" "$T/fs"
expect_fail 1 "$EVFS_BIN" "$STORE" "$T/fs"
grep -q "the mount at $MNT" "$T/err" || die "the third attempt does not name the mount"
ok "second and third mounts are refused naming the first"

# --- 6: SEEK_DATA past the data is no warning -----------------------------
ctl attach v >/dev/null
dd if=/dev/urandom of="$MNT/volumes/v" bs=64K count=1 conv=notrunc,fsync status=none
python3 - "$MNT/volumes/v" <<'EOF' || die "SEEK_DATA past the data did not give ENXIO"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    os.lseek(fd, 32 << 20, os.SEEK_DATA)
    sys.exit(1)
except OSError as e:
    sys.exit(0 if e.errno == errno.ENXIO else 1)
EOF
sleep 0.2
grep -q "lseek" "$T/evfs.log" && die "SEEK_DATA past the data was logged: $(grep lseek "$T/evfs.log")"
ok "SEEK_DATA past the last data: ENXIO, nothing logged"

# --- 3 (R35): a volume in use is not detached or deleted without --force --
L=$(losetup_add "$MNT/volumes/v")
expect_msg 1 "detach v refused" "in use" "$L" "--force" "R35" -- ctl detach v
[ "$(ctl --json volume show v | jget attached)" = attached ] || die "v detached while in use"
dd if=/dev/urandom of="$L" bs=4k count=1 oflag=direct conv=notrunc status=none || die "v unusable after the refusal"
losetup -d "$L"; LOOPS=()
exec 7<"$MNT/volumes/v"                    # a plain open file handle
expect_msg 1 "1 open file handle in the mount at $MNT" -- ctl detach v
ctl detach v --force 2>"$T/err" >/dev/null || die "detach --force failed"
grep -q "warning: volume v: detached while in use" "$T/err" || die "no warning on detach --force"
expect_msg 1 "delete v refused" "in use" -- ctl volume delete v
exec 7<&-
sleep 0.2
ctl attach v >/dev/null
ok "R35: detach and delete of an open volume are refused naming the loop device or the open handles; --force warns"
ctl detach v >/dev/null
umnt

# --- 6: an unwritable log_file is said before the mount goes background --
mkdir -p "$T/ro"; chmod 0500 "$T/ro"
sed -i "s|^log_file =.*|log_file = $T/ro/sub/evfs.log|" "$STORE/evfs.ini"
"$EVFS_BIN" "$STORE" "$MNT" 2>"$T/err" || die "the mount failed"
for _ in $(seq 50); do mountpoint -q "$MNT" && break; sleep 0.1; done
grep -q "log_file $T/ro/sub/evfs.log cannot be written" "$T/err" || die "no warning about the log file: $(cat "$T/err")"
umnt
sed -i "s|^log_file =.*|log_file = $T/evfs.log|" "$STORE/evfs.ini"
ok "an unwritable log_file is named on stderr before the mount daemonizes"

# --- 7: freed space waiting for reuse is bounded in bytes -----------------
S8=$T/s8
STORE=$S8 EVFS_STORE=$S8 init_store --chunk-size 65536 >/dev/null   # the same kind of store as the main one
ctl --store "$S8" kms grant >/dev/null
ctl --store "$S8" volume create w --size 48M --encrypt >/dev/null
mkdir -p "$M8"
"$EVFS_BIN" "$S8" "$M8"
for _ in $(seq 50); do mountpoint -q "$M8" && break; sleep 0.1; done
ctl --store "$S8" attach w >/dev/null
fio --name=ow --filename="$M8/volumes/w" --rw=randwrite --bs=64k --size=48M --io_size=768M \
  --ioengine=psync --randrepeat=1 --verify=0 --output=/dev/null || die "fio failed"
lin=$(ctl --store "$S8" --json volume show w | jget lineage)
kib=$(STORE=$S8 rest_kib "$lin/data")
fusermount3 -u "$M8"
for _ in $(seq 100); do pgrep -f "evfs $S8 $M8" >/dev/null || break; sleep 0.1; done
[ "$kib" -lt $((200 * 1024)) ] || die "768 MiB of 64 KiB overwrites on a 48 MiB volume left ${kib} KiB in its pool"
after=$(STORE=$S8 rest_kib "$lin/data")
[ "$after" -le $((52 * 1024)) ] || die "after unmount the 48 MiB volume's pool still takes ${after} KiB"
ok "64 KiB chunks: 768 MiB of overwrites keep a 48 MiB volume's pool at $((kib / 1024)) MiB; $((after / 1024)) MiB once unmounted"

finish
