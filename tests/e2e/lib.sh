# Common setup for the end-to-end tests: a fresh store, a real FUSE mount,
# cleanup of mounts and loop devices whatever happens.  Sourced by e2e_*.sh.
set -euo pipefail
# jget PATH: a field of `evfsctl --json` output on stdin (json.sh)
. "$(dirname "${BASH_SOURCE[0]}")/json.sh"
: "${EVFS_BIN:?}" "${EVFSCTL_BIN:?}"
if [ "$(id -u)" != 0 ] || [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
  echo "SKIPPED: end-to-end tests need root, /dev/fuse and fusermount3" >&2
  exit 77
fi
T=$(mktemp -d /tmp/evfs-e2e.XXXXXX)
STORE=$T/store MNT=$T/mnt FSMNT=$T/fs
export EVFS_STORE=$STORE
LOOPS=()
mkdir -p "$MNT" "$FSMNT"
PASS=0
cleanup() {
  set +e
  mountpoint -q "$FSMNT" && { umount "$FSMNT" || umount -l "$FSMNT"; }
  # losetup_add usually runs in $(...), so its LOOPS+= is lost: $T/loops has them all.
  # Only devices still backed by a file of this test are detached (never another test's).
  for l in "${LOOPS[@]}" $(cat "$T/loops" 2>/dev/null); do
    case "$(losetup -nO BACK-FILE "$l" 2>/dev/null)" in "$T"/*) losetup -d "$l" 2>/dev/null;; esac
  done
  if mountpoint -q "$MNT"; then fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  pkill -f "evfs $STORE" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
ctl() { "$EVFSCTL_BIN" "$@"; }
mnt() { "$EVFS_BIN" "$STORE" "$MNT" "$@"; for _ in $(seq 50); do mountpoint -q "$MNT" && return 0; sleep 0.1; done; echo "mount did not appear"; return 1; }
# Unmount and wait for the daemon to finish closing the store (it holds the store lock until then).
umnt() { fusermount3 -u "$MNT"; for _ in $(seq 100); do mountpoint -q "$MNT" || pgrep -f "evfs $STORE $MNT" >/dev/null || return 0; sleep 0.1; done; return 1; }
ok() { PASS=$((PASS + 1)); echo "ok $PASS - $*"; }
# On failure, the end of the mount's log says why (new_store points it at $T/evfs.log).
die() { echo "FAIL: $*" >&2; [ -s "$T/evfs.log" ] && { echo "--- end of the mount's log:" >&2; tail -25 "$T/evfs.log" >&2; }; exit 1; }
# expect_fail CODE CMD...: CMD must exit with CODE; prints its stderr.
expect_fail() { local want=$1; shift; set +e; "$@" 2>"$T/err"; local rc=$?; set -e; cat "$T/err";
  [ "$rc" = "$want" ] || die "expected exit $want from: $* (got $rc)"; }
# SoftHSM2 (R34).  softhsm_setup: MODULE and SOFTHSM2_CONF (tokens in
# $T/tokens), or SKIPPED and exit 77; softhsm_token LABEL PIN: a fresh token.
softhsm_setup() {
  MODULE=${EVFS_SOFTHSM_MODULE:-}
  for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
           /usr/lib64/pkcs11/libsofthsm2.so /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so; do
    [ -n "$MODULE" ] || { [ -r "$m" ] && MODULE=$m; }
  done
  if [ -z "$MODULE" ] || ! command -v softhsm2-util >/dev/null; then
    echo "*** SKIPPED: $(basename "$0") needs SoftHSM2 (apt-get install softhsm2) ***" >&2
    exit 77
  fi
  mkdir -p "$T/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$T/tokens" >"$T/softhsm2.conf"
  export SOFTHSM2_CONF=$T/softhsm2.conf
}
softhsm_token() { softhsm2-util --init-token --free --label "$1" --pin "$2" --so-pin 5678 >/dev/null; }
# init_store [ARGS]: evfsctl init with the root key in $T/root.key or, with
# EVFS_E2E_KMS=pkcs11 (ctest's *_pkcs11 runs of a script), in a SoftHSM2 token.
# With EVFS_E2E_STORE=rados (ctest's *_rados runs, under tests/cluster/ceph.sh)
# the chunk pools are RADOS objects in $EVFS_CEPH_POOL; with =shared (the
# *_shared runs, under tests/cluster/both.sh) the catalog and the key store
# are in PostgreSQL too.
init_store() {
  if [ "${EVFS_E2E_STORE:-}" = rados ] || [ "${EVFS_E2E_STORE:-}" = shared ]; then
    : "${EVFS_CEPH_CONF:?EVFS_E2E_STORE=rados runs under tests/cluster/ceph.sh}"
    set -- "$@" --rados-conf "$EVFS_CEPH_CONF" --rados-pool "$EVFS_CEPH_POOL"
  fi
  if [ "${EVFS_E2E_STORE:-}" = shared ]; then
    : "${EVFS_PG_CONNINFO_PASSFILE:?EVFS_E2E_STORE=shared runs under tests/cluster/both.sh}"
    set -- "$@" --postgresql "$EVFS_PG_CONNINFO_PASSFILE"
  fi
  if [ "${EVFS_E2E_KMS:-}" = pkcs11 ]; then
    softhsm_setup; softhsm_token evfs-e2e evfs-e2e-pin-5d2a
    echo evfs-e2e-pin-5d2a >"$T/pin"; chmod 0400 "$T/pin"
    ctl init --pkcs11-module "$MODULE" --token evfs-e2e --pin-file "$T/pin" "$@" &&
      grep -q '^backend = pkcs11$' "$STORE/evfs.ini" || die "init_store: no pkcs11 backend in evfs.ini"
  else
    ctl init --keyfile "$T/root.key" "$@"
  fi
}
new_store() { init_store >/dev/null; ctl kms grant >/dev/null
  sed -i "s|^log_file =.*|log_file = $T/evfs.log|" "$STORE/evfs.ini"; }
# Tests of format 1's files (maps/, tags) make their pools in format 1.
pool_format() { sed -i "s|^pool_format =.*|pool_format = $1|" "$STORE/evfs.ini"; }
losetup_add() { local l; l=$(losetup -f --show "$1"); LOOPS+=("$l"); echo "$l" >>"$T/loops"; echo "$l"; }
# sha FILE: its SHA-256; show_field KIND NAME PATH: a field of `evfsctl --json
# KIND show NAME`; on_tty CMD...: CMD on a pseudo-terminal (progress bars).
sha() { sha256sum "$1" | cut -d' ' -f1; }
show_field() { ctl --json "$1" show "$2" | jget "$3"; }
on_tty() { script -qec "$*" /dev/null </dev/null; }
# rados_plain_scan NS: the data objects of namespace NS of $EVFS_CEPH_POOL
# (their names in $T/objs); dies if one holds the marker EVFS-PLAINTEXT,
# else sets N_DATA to how many there are.
rados_plain_scan() {
  local R=(rados -c "$EVFS_CEPH_CONF" -p "$EVFS_CEPH_POOL" -N "$1") o
  "${R[@]}" ls >"$T/objs"
  N_DATA=0
  for o in $(grep '\.data\.' "$T/objs"); do
    "${R[@]}" get "$o" "$T/obj"
    ! grep -q EVFS-PLAINTEXT "$T/obj" || die "object $o holds plaintext"
    N_DATA=$((N_DATA + 1))
  done
}
finish() { echo "$PASS passed, 0 failed"; }
