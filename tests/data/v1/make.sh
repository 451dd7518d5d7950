#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# make.sh OUTDIR - build the golden version-1 store with the current evfs
# and write OUTDIR/store, OUTDIR/root.key and OUTDIR/manifest.txt.
#
#   sudo tests/data/v1/make.sh tests/data/v1      # regenerate the committed copy
#
# Run only to (re)create the anchor while the on-disk format is version 1:
# tests/golden/check_golden.c checks that every later evfs reads the
# committed store exactly as the manifest says.  Needs root, /dev/fuse,
# fusermount3 and a build (EVFS_BUILD, default <repo>/build).
#
# The plaintext is deterministic (fixed text lines from gen() below), so
# every run gives the same manifest; ciphertext, ids, nonces and data keys
# are random, so the store's bytes differ from run to run.  The root key is
# fixed too (SHA-256 of a label): it is test data, not a secret.
#
# The store is built in the fixed scratch directory /tmp/evfs-golden-v1, so
# the absolute paths a v1 store records (evfs.ini [kms] key_path, and the
# backup directory in each backup's catalog row) are the same on every run;
# the test rewrites both in its temporary copy.
set -euo pipefail
OUT=${1:?usage: make.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${EVFS_BUILD:-$REPO/build}
EVFS=$BUILD/fs/evfs CTL=$BUILD/cli/evfsctl
W=/tmp/evfs-golden-v1
STORE=$W/store MNT=$W/mnt
export EVFS_STORE=$STORE

[ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null ||
  { echo "make.sh: needs root, /dev/fuse and fusermount3" >&2; exit 1; }
[ -x "$EVFS" ] && [ -x "$CTL" ] || { echo "make.sh: build evfs first ($BUILD)" >&2; exit 1; }
[ ! -e "$W" ] || { echo "make.sh: $W exists (another run, or a failed one: remove it)" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
mkdir -p "$MNT"
MOUNT_PID=
cleanup() {
  set +e
  if mountpoint -q "$MNT"; then fusermount3 -u "$MNT" || umount -l "$MNT"; fi
  rm -rf "$W"
}
trap cleanup EXIT

ctl() { "$CTL" "$@" >/dev/null; }
umnt() { # unmount, then wait for the daemon to close the store (it holds evfs.lock until then)
  fusermount3 -u "$MNT"
  for _ in $(seq 100); do kill -0 "$MOUNT_PID" 2>/dev/null || return 0; sleep 0.1; done
  echo "make.sh: the mount (pid $MOUNT_PID) did not exit" >&2; return 1
}
# gen LABEL BYTES: BYTES of 64-byte text lines "LABEL n hex...", the hex from a
# 31-bit LCG (exact in any awk's doubles); every line, hence every chunk, differs.
gen() {
  awk -v l="$1" -v n="$2" 'BEGIN {
    x = 0; for (i = 1; i <= length(l); i++) x = (x * 31 + index("abcdefghijklmnopqrstuvwxyz0123456789-", substr(l, i, 1))) % 2147483648
    for (i = 0; n > 0; i++) {
      h = ""; for (k = 0; k < 5; k++) { x = (x * 69069 + 1) % 2147483648; h = h sprintf("%08x", x) }
      s = sprintf("%-13.13s %08d %s\n", l, i, h)
      if (n < 64) s = substr(s, 1, n)
      printf "%s", s; n -= length(s)
    } }'
}
# put VOL OFFSET BYTES LABEL: write gen's bytes at a byte offset through the mount.
put() { gen "$4" "$3" | dd of="$MNT/volumes/$1" bs=64K seek="$2" oflag=seek_bytes iflag=fullblock \
          conv=notrunc,fsync status=none; }
# punch VOL OFFSET BYTES: discard a range (the map entries become holes).
punch() { fallocate -p -o "$2" -l "$3" "$MNT/volumes/$1"; }
K=1024 M=1048576

# The root key: 32 fixed bytes (test data).
printf 'evfs golden store v1 root key (test data, not a secret)' | sha256sum | cut -c1-64 | xxd -r -p > "$W/root.key"
chmod 0400 "$W/root.key"
ctl init --keyfile "$W/root.key"
ctl kms grant
ctl key create golden-key --description "golden store v1: custom key"
ctl volume create enc1 --size 4M --encrypt                  # evs/default
ctl volume create plain1 --size 2M                          # unencrypted
ctl volume create cust1 --size 2M --encrypt --key golden-key
"$EVFS" "$STORE" "$MNT"
for _ in $(seq 50); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || { echo "make.sh: the mount did not appear" >&2; exit 1; }
MOUNT_PID=$(pgrep -f -x "$EVFS $STORE $MNT")
for v in enc1 plain1 cust1; do ctl attach $v; done

# enc1, phase A: aligned runs, runs across chunk boundaries, the volume's last
# bytes, never-written holes (chunks 16-48, 51-255, 290-1021; at the end
# 16-48, 51-255, 280-283 (discarded), 290-639, 650-1021).
put enc1 0 $((64 * K)) enc1-a0                   # chunks 0-15
put enc1 $((50 * 4096 - 1000)) 2000 enc1-a1      # across the 49|50 boundary, both chunks partial
put enc1 $((1 * M)) $((128 * K)) enc1-a2         # chunks 256-287
put enc1 $((1 * M + 128 * K + 1)) 5000 enc1-a3  # odd offset, chunks 288-289 partial
put enc1 $((4 * M - 6000)) 6000 enc1-a4          # ends at the volume's end (chunks 1022-1023)
ctl snapshot create enc1 enc1-snap               # frozen at phase A
# phase B: overwrites under the snapshot (copy-on-write) and a discard.
put enc1 $((32 * K)) $((8 * K)) enc1-b0          # chunks 8-9 rewritten
put enc1 $((1 * M + 64 * K - 10)) 20 enc1-b1     # 20 bytes across the 271|272 boundary
punch enc1 $((1 * M + 96 * K)) $((16 * K))       # chunks 280-283 become holes
ctl backup create enc1 enc1-full                 # phase A + B
# phase C: new data in a hole, a small overwrite inside chunk 0.
put enc1 $((2 * M + 512 * K)) $((40 * K)) enc1-c0   # chunks 640-649
put enc1 100 50 enc1-c1
ctl backup create enc1 enc1-incr --incremental   # phase A + B + C: the volume's final content

# plain1: unencrypted volume, its backup and an unencrypted image.
put plain1 0 $((32 * K)) plain1-0
put plain1 500000 70000 plain1-1                 # unaligned both ends
put plain1 $((2 * M - 4096)) 4096 plain1-2       # the last chunk
ctl backup create plain1 plain1-full
ctl image create plain1 img-plain
put plain1 $((1 * M)) $((8 * K)) plain1-3        # after the image and the backup: they keep the old bytes

# cust1: encrypted under the custom key golden-key, and an encrypted image of it.
put cust1 4096 $((16 * K)) cust1-0
put cust1 $((1 * M - 3)) 10 cust1-1              # across the 255|256 boundary
put cust1 1500000 30000 cust1-2
ctl image create cust1 img-enc
sha256sum < "$MNT/volumes/cust1" > "$W/img-enc.sum"
put cust1 0 4096 cust1-3                         # after the image: it keeps the old bytes

# The manifest: SHA-256 of each object's full plaintext as read through the mount.
# An encrypted image cannot be read (R9): its line holds the SHA-256 of a
# volume cloned from it (then deleted), which reads the image's chunks.
sum() { sha256sum < "$1" | cut -c1-64; }
line() { # kind name file encrypted key
  printf '%-8s %-11s %8s %s %-3s %s\n' "$1" "$2" "$(stat -c %s "$3")" "$(sum "$3")" "$4" "$5"; }
ctl volume create golden-tmp --from-image img-enc
ctl attach golden-tmp
{
  echo "# evfs golden store, format version 1 (tests/data/v1; see README.md there)."
  echo "# made by tests/data/v1/make.sh with evfs $(git -C "$REPO" rev-parse HEAD)$(
    git -C "$REPO" status --porcelain -- fs kms meta cli CMakeLists.txt | grep -q . && echo ' (with uncommitted changes)')"
  echo "# kind name size sha256-of-plaintext encrypted key"
  line volume enc1 "$MNT/volumes/enc1" yes evs/default
  line volume plain1 "$MNT/volumes/plain1" no -
  line volume cust1 "$MNT/volumes/cust1" yes golden-key
  line snapshot enc1-snap "$MNT/snapshots/enc1-snap" yes evs/default
  line backup enc1-full "$MNT/backups/enc1-full" yes evs/default
  line backup enc1-incr "$MNT/backups/enc1-incr" yes evs/default
  line backup plain1-full "$MNT/backups/plain1-full" no -
  line image img-plain "$MNT/images/img-plain" no -
  line image img-enc "$MNT/volumes/golden-tmp" yes golden-key
} > "$W/manifest.txt"
cat "$MNT/images/img-enc" >/dev/null 2>&1 && { echo "make.sh: the encrypted image is readable (R9)" >&2; exit 1; }
cmp "$MNT/volumes/enc1" "$MNT/backups/enc1-incr"
cmp "$MNT/images/img-plain" "$MNT/backups/plain1-full"
sha256sum < "$MNT/volumes/golden-tmp" | cmp - "$W/img-enc.sum"
ctl detach golden-tmp
ctl volume delete golden-tmp
umnt

# Sanity: the store checks clean, the SQLite files are checkpointed (no -wal,
# -shm or -journal left), nothing but the layout of docs/format.md.
"$CTL" fsck >/dev/null || { "$CTL" fsck >&2; exit 1; }
leftover=$(find "$STORE" -name '*-wal' -o -name '*-shm' -o -name '*-journal' -o -name '.tmp-*')
[ -z "$leftover" ] || { echo "make.sh: left in the store: $leftover" >&2; exit 1; }

# Copy out; evfs.lock is runtime state (flock'd, emptied on close), not data:
# the store recreates it on open.
rm -rf "$OUT/store"
mkdir "$OUT/store"
cp -a "$STORE/." "$OUT/store/"
rm -f "$OUT/store/evfs.lock"
cp "$W/root.key" "$OUT/root.key.new" && mv -f "$OUT/root.key.new" "$OUT/root.key"
chmod 0600 "$OUT/root.key"
cp "$W/manifest.txt" "$OUT/manifest.txt"
cat "$OUT/manifest.txt"
echo "store: $(du -sb --apparent-size "$OUT/store" | cut -f1) bytes in $OUT/store"
