#!/usr/bin/env bash
# evfs quickstart: build, create a store and an encrypted volume, mount the
# store with FUSE, put ext4 on the volume through a loop device, copy files
# in, unmount everything, remount and read them back.  Run as root on
# Debian 12 (it installs its dependencies).  Cleans up after itself.
#
# By default it builds build/ and runs build/fs/fuse/evfs and
# build/cli/evfsctl.  To run installed programs instead (nothing is built):
#   EVFS_INSTALLED=1 examples/quickstart.sh      # evfs and evfsctl from PATH
#   EVFS_BIN=/usr/bin/evfs EVFSCTL_BIN=/usr/bin/evfsctl examples/quickstart.sh
# (either one alone replaces only that program).  EVFS_NO_APT=1: install no
# packages.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "$(id -u)" != 0 ]; then echo "quickstart: run as root (it uses losetup and mount)"; exit 1; fi
EVFS=${EVFS_BIN:-} CTL=${EVFSCTL_BIN:-}
if [ "${EVFS_INSTALLED:-0}" = 1 ]; then
  EVFS=${EVFS:-$(command -v evfs || true)} CTL=${CTL:-$(command -v evfsctl || true)}
  if [ -z "$EVFS" ] || [ -z "$CTL" ]; then echo "quickstart: EVFS_INSTALLED=1 but evfs or evfsctl is not in PATH"; exit 1; fi
fi
if command -v apt-get >/dev/null && [ -z "${EVFS_NO_APT:-}" ]; then
  echo "== installing dependencies"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  if [ -n "$EVFS" ] && [ -n "$CTL" ]; then   # nothing to build: what the demo runs
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 e2fsprogs attr >/dev/null
  else
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential cmake pkg-config libfuse3-dev fuse3 \
      libsodium-dev libsqlite3-dev libinih-dev check e2fsprogs attr >/dev/null
  fi
fi
if [ -z "$EVFS" ] || [ -z "$CTL" ]; then
  echo "== building"
  cmake -S . -B build >/dev/null && cmake --build build -j2 >/dev/null
fi
EVFS=${EVFS:-$ROOT/build/fs/fuse/evfs} CTL=${CTL:-$ROOT/build/cli/evfsctl}
for prog in "$EVFS" "$CTL"; do
  [ -x "$prog" ] || { echo "quickstart: $prog is not an executable file"; exit 1; }
done
echo "== using $EVFS and $CTL"

WORK=$(mktemp -d /tmp/evfs-quickstart.XXXXXX)
STORE=$WORK/store MNT=$WORK/mnt FSMNT=$WORK/ext4 LOOP=
export EVFS_STORE=$STORE
cleanup() {
  set +e
  mountpoint -q "$FSMNT" && umount "$FSMNT"
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
  mountpoint -q "$MNT" && { fusermount3 -u "$MNT" || umount -l "$MNT"; }
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$MNT" "$FSMNT"

step() { echo; echo "== $*"; }
# evfs returns before the mount serves: the store is opened and the control
# socket started when the kernel's first request (FUSE_INIT) arrives, and an
# evfsctl command in that window runs without the mount ("the store is not
# mounted").  Listing the mount waits for FUSE_INIT to be answered.
mount_ready() {
  for _ in $(seq 100); do mountpoint -q "$MNT" && [ -d "$MNT/volumes" ] && return 0; sleep 0.1; done
  echo "quickstart: $MNT did not come up"; return 1
}
step "create a store (root key in a key file, mode 0400)"
$CTL init --keyfile "$WORK/root.key"
step "a security administrator grants the project KMS access (creates evs/default)"
$CTL kms grant
step "create a 256 MiB encrypted volume with a custom key"
$CTL key create demo-key --description "quickstart key"
$CTL volume create data1 --size 256M --encrypt --key demo-key
step "mount the store and attach the volume (unwraps its data key into locked memory)"
$EVFS "$STORE" "$MNT"
mount_ready
$CTL attach data1
ls -l "$MNT/volumes"
getfattr -d -m user.evfs "$MNT/volumes/data1" 2>/dev/null || true
step "loop-mount it and make an ext4 filesystem"
LOOP=$(losetup -f --show "$MNT/volumes/data1")
mkfs.ext4 -q "$LOOP"
mount "$LOOP" "$FSMNT"
cp -r "$ROOT/fs" "$FSMNT/evfs-sources"
echo "hello from an encrypted volume" > "$FSMNT/hello.txt"
sync
( cd "$FSMNT" && find . -type f -exec sha256sum {} + | sort -k2 ) > "$WORK/before.sum"
step "the store holds only ciphertext"
if grep -rq "hello from an encrypted volume" "$STORE"; then echo "PLAINTEXT FOUND IN STORE"; exit 1; fi
echo "no plaintext marker anywhere under $STORE"
step "snapshot while mounted, then unmount everything"
$CTL snapshot create data1 snap1
umount "$FSMNT"; losetup -d "$LOOP"; LOOP=
fusermount3 -u "$MNT"
step "remount: the volume is re-attached automatically (R21)"
$EVFS "$STORE" "$MNT"
mount_ready
$CTL volume list
LOOP=$(losetup -f --show "$MNT/volumes/data1")
e2fsck -fn "$LOOP" >/dev/null && echo "e2fsck: clean"
mount "$LOOP" "$FSMNT"
( cd "$FSMNT" && find . -type f -exec sha256sum {} + | sort -k2 ) > "$WORK/after.sum"
cat "$FSMNT/hello.txt"
cmp "$WORK/before.sum" "$WORK/after.sum" && echo "all $(wc -l < "$WORK/after.sum") files read back identical"
step "done"
