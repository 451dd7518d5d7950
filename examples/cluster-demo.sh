#!/usr/bin/env bash
# evfs cluster demo: one store shared by two hosts.  Starts a throwaway
# single-node Ceph (one mon, one memstore OSD) and a PostgreSQL server in
# temp dirs on 127.0.0.1 (tests/cluster/both.sh), makes a store whose pools
# are RADOS objects and whose catalog and key store are in PostgreSQL on
# "host A", joins "host B" (its own store directory, name and mount point:
# two hosts on one machine), puts ext4 with files on an encrypted volume on
# A, moves the volume to B and reads every file back there.  Run as root on
# Debian 12 (it installs its dependencies).  Stops what it started and
# removes its files, whatever happens.
#
# By default it builds build/ and runs build/fs/fuse/evfs and
# build/cli/evfsctl; EVFS_BIN / EVFSCTL_BIN name other programs, and
# EVFS_NO_APT=1 installs no packages (as examples/quickstart.sh).  ctest
# runs it as cluster_demo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "${1:-}" != --inside ]; then
  # As ctest's cluster_demo (EVFS_DEMO_TEST=1): missing root or services
  # skip (77, said loudly) outside CI, like the other cluster tests.
  if [ "$(id -u)" != 0 ]; then
    [ -n "${EVFS_DEMO_TEST:-}" ] && { echo "*** SKIPPED: cluster_demo needs root ***"; exit 77; }
    echo "cluster-demo: run as root (it uses losetup and mount)"; exit 1
  fi
  if command -v apt-get >/dev/null && [ -z "${EVFS_NO_APT:-}" ]; then
    echo "== installing dependencies (Ceph, PostgreSQL, the build)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential cmake \
      pkg-config libfuse3-dev fuse3 libsodium-dev libsqlite3-dev libinih-dev check e2fsprogs attr \
      ceph-mon ceph-osd ceph-common librados-dev postgresql libpq-dev uuid-runtime >/dev/null
  fi
  if [ -z "${EVFS_BIN:-}" ] || [ -z "${EVFSCTL_BIN:-}" ]; then
    echo "== building"
    cmake -S . -B build >/dev/null && cmake --build build -j2 >/dev/null
  fi
  export EVFS_BIN=${EVFS_BIN:-$ROOT/build/fs/fuse/evfs} EVFSCTL_BIN=${EVFSCTL_BIN:-$ROOT/build/cli/evfsctl}
  echo "== starting PostgreSQL and Ceph on 127.0.0.1 (tests/cluster/both.sh)"
  [ -n "${EVFS_DEMO_TEST:-}" ] || export EVFS_CLUSTER_REQUIRED=1
  exec bash tests/cluster/both.sh run -- bash "$0" --inside
fi

: "${EVFS_CEPH_CONF:?}" "${EVFS_CEPH_POOL:?}" "${EVFS_PG_CONNINFO_PASSFILE:?}"
EVFS=$EVFS_BIN CTL=$EVFSCTL_BIN PG=$EVFS_PG_CONNINFO_PASSFILE
WORK=$(mktemp -d /tmp/evfs-cluster-demo.XXXXXX)
A=$WORK/host-a B=$WORK/host-b MA=$WORK/mnt-a MB=$WORK/mnt-b FSMNT=$WORK/ext4 LOOP=
cleanup() {
  set +e
  mountpoint -q "$FSMNT" && umount "$FSMNT"
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
  for m in "$MA" "$MB"; do mountpoint -q "$m" && { fusermount3 -u "$m" || umount -l "$m"; }; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$MA" "$MB" "$FSMNT"
step() { echo; echo "== $*"; }
mount_ready() {
  for _ in $(seq 100); do mountpoint -q "$1" && [ -d "$1/volumes" ] && return 0; sleep 0.1; done
  echo "cluster-demo: $1 did not come up"; return 1
}
unmount() {
  fusermount3 -u "$2"
  for _ in $(seq 100); do pgrep -f "evfs $1 $2" >/dev/null || return 0; sleep 0.1; done
  echo "cluster-demo: the mount of $1 did not end"; return 1
}

step "host A: a store with its pools in RADOS, catalog and key store in PostgreSQL"
$CTL --store "$A" init --keyfile "$WORK/root.key" --rados-conf "$EVFS_CEPH_CONF" --rados-pool "$EVFS_CEPH_POOL" \
  --postgresql "$PG" --host host-a
S=$(sed -n 's/^schema = //p' "$A/evfs.ini")
step "host B joins it with a copy of the root key (pool, namespace, region come from the catalog)"
install -m 0400 "$WORK/root.key" "$WORK/root-b.key"
$CTL --store "$B" init --join --keyfile "$WORK/root-b.key" --rados-conf "$EVFS_CEPH_CONF" --postgresql "$PG" \
  --schema "$S" --host host-b
step "host A: grant, a key, a 256 MiB encrypted volume"
$CTL --store "$A" kms grant
$CTL --store "$A" key create demo-key --description "cluster demo key"
$CTL --store "$A" volume create data1 --size 256M --encrypt --key demo-key
step "host B sees it"
$CTL --store "$B" volume list

step "host A: mount, attach, ext4 on a loop device, files"
$EVFS "$A" "$MA"
mount_ready "$MA"
$CTL --store "$A" attach data1
LOOP=$(losetup -f --show "$MA/volumes/data1")
mkfs.ext4 -q "$LOOP"
mount "$LOOP" "$FSMNT"
cp -r "$ROOT/fs" "$FSMNT/evfs-sources"
echo "hello from host A, on an encrypted volume in RADOS" > "$FSMNT/hello.txt"
sync
( cd "$FSMNT" && find . -type f -exec sha256sum {} + | sort -k2 ) > "$WORK/before.sum"
step "host B sees it attached on host A (and would be refused attaching it)"
$CTL --store "$B" volume show data1 | grep attached
step "host A lets go: unmount ext4, detach, unmount"
umount "$FSMNT"; losetup -d "$LOOP"; LOOP=
$CTL --store "$A" detach data1
unmount "$A" "$MA"

step "what RADOS holds: ciphertext only"
NS=$(sed -n 's/^namespace = //p' "$A/evfs.ini")
n=0
for o in $(rados -c "$EVFS_CEPH_CONF" -p "$EVFS_CEPH_POOL" -N "$NS" ls | grep '\.data\.'); do
  rados -c "$EVFS_CEPH_CONF" -p "$EVFS_CEPH_POOL" -N "$NS" get "$o" "$WORK/obj"
  if grep -q "hello from host A" "$WORK/obj"; then echo "PLAINTEXT FOUND IN $o"; exit 1; fi
  n=$((n + 1))
done
echo "$n data objects in namespace $NS, no plaintext marker in any"

step "host B: mount, attach, mount the ext4, check every file"
$EVFS "$B" "$MB"
mount_ready "$MB"
$CTL --store "$B" attach data1
LOOP=$(losetup -f --show "$MB/volumes/data1")
e2fsck -fn "$LOOP" >/dev/null && echo "e2fsck: clean"
mount "$LOOP" "$FSMNT"
( cd "$FSMNT" && find . -type f -exec sha256sum {} + | sort -k2 ) > "$WORK/after.sum"
cat "$FSMNT/hello.txt"
cmp "$WORK/before.sum" "$WORK/after.sum"
echo "all $(wc -l < "$WORK/after.sum") files read back identical on host B"
umount "$FSMNT"; losetup -d "$LOOP"; LOOP=
$CTL --store "$B" detach data1
unmount "$B" "$MB"
step "done (the services stop and every temp dir goes)"
