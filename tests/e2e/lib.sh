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
  local o; rados_cmd "$1"
  "${RADOS_CMD[@]}" ls >"$T/objs"
  N_DATA=0
  for o in $(grep '\.data\.' "$T/objs"); do
    "${RADOS_CMD[@]}" get "$o" "$T/obj"
    ! grep -q EVFS-PLAINTEXT "$T/obj" || die "object $o holds plaintext"
    N_DATA=$((N_DATA + 1))
  done
}
# --- The store at rest on either kind of store (what one with the disks or
# the database sees), so a script's checks run on both: pools are files
# $STORE/pools/LIN/FILE (local) or RADOS objects LIN.FILE.<extent, 16 hex>
# of 4 MiB with the sizes in LIN.hdr's xattrs size.FILE (fs/engine/pdev_rados.c);
# the catalog and the key store are SQLite files or PostgreSQL schemas.
# on_rados / on_pg: the pools are in RADOS / the catalog and keys in PostgreSQL.
on_rados() { grep -q '^backend = rados$' "$STORE/evfs.ini"; }
on_pg() { grep -q '^backend = postgresql$' "$STORE/evfs.ini"; }
# rados_cmd [NS]: the rados CLI on namespace NS (default: the store's), as
# an array in RADOS_CMD.
rados_cmd() {
  RADOS_CMD=(rados -c "$EVFS_CEPH_CONF" -p "$EVFS_CEPH_POOL" -N "${1:-$(sed -n 's/^namespace = //p' "$STORE/evfs.ini")}")
}
# rados_fetch PREFIX DIR: every object whose name starts with PREFIX, into DIR
# (emptied first), one file per object, a few gets in flight; none is an
# error (a check of what is at rest must not pass on nothing).
rados_fetch() {
  rados_cmd; rm -rf "$2"; mkdir -p "$2"
  "${RADOS_CMD[@]}" ls | awk -v p="$1" 'index($0, p) == 1' |
    xargs -r -P 8 -I{} "${RADOS_CMD[@]}" get {} "$2/{}" || die "rados_fetch $1: listing or getting the objects failed"
  [ -n "$(ls -A "$2")" ] || die "rados_fetch: no object named $1* in the store's namespace"
}
# rest_grep LIN PATTERN: PATTERN is in some file (object) of lineage LIN.
rest_grep() {
  if ! on_rados; then grep -rqa "$2" "$STORE/pools/$1"; return; fi
  rados_fetch "$1." "$T/rest"; grep -rqa "$2" "$T/rest"
}
# rest_kib [LIN[/FILE]] [EXCLUDE]: KiB the pools (one lineage, one of its
# files) take at rest, file EXCLUDE left out: du locally; in RADOS, whose
# object sizes do not shrink on a punch (a zero op), the non-zero 4 KiB blocks.
rest_kib() {
  if ! on_rados; then du -sk ${2:+--exclude="$2"} "$STORE/pools/${1:-}" | cut -f1; return; fi
  rados_fetch "${1:+${1/\//.}.}" "$T/rest"
  [ -z "${2:-}" ] || find "$T/rest" -name "*.$2.*" -delete
  python3 -c 'import os, sys
d = sys.argv[1]; n = 0
for f in os.listdir(d):
    b = open(os.path.join(d, f), "rb").read()
    n += sum(1 for o in range(0, len(b), 4096) if b[o:o + 4096].strip(b"\0"))
print(n * 4)' "$T/rest"
}
# rest_edit LIN FILE CMD [ARGS...]: runs CMD ARGS... PATH on the bytes of
# file FILE of lineage LIN: the pool file itself locally; in RADOS a copy
# (holes zero), whose changed 4 MiB extents are put back as objects after.
rest_edit() {
  local lin=$1 f=$2 size k o; shift 2
  if ! on_rados; then "$@" "$STORE/pools/$lin/$f"; return; fi
  rados_fetch "$lin.$f." "$T/rest"; rados_cmd
  size=$("${RADOS_CMD[@]}" getxattr "$lin.hdr" "size.$f" 2>/dev/null || echo 0)
  rm -f "$T/rest.file"; truncate -s "$size" "$T/rest.file"
  for o in "$T"/rest/*; do
    [ -e "$o" ] || continue
    dd if="$o" of="$T/rest.file" bs=4M seek=$((16#${o##*.})) conv=notrunc status=none
  done
  truncate -s "$size" "$T/rest.file"; cp "$T/rest.file" "$T/rest.orig"
  "$@" "$T/rest.file"
  rm -rf "$T/rest.x"; mkdir "$T/rest.x"
  split -b 4M -x -a 16 "$T/rest.file" "$T/rest.x/n."; split -b 4M -x -a 16 "$T/rest.orig" "$T/rest.x/o."
  for o in "$T"/rest.x/n.*; do
    k=${o##*.}
    cmp -s "$o" "$T/rest.x/o.$k" || "${RADOS_CMD[@]}" put "$lin.$f.$k" "$o"
  done
  rm -rf "$T/rest.x" "$T/rest.file" "$T/rest.orig"
}
# rest_get LIN FILE OUT / rest_put LIN FILE IN: file FILE of lineage LIN
# copied out to OUT / overwritten with IN (as one with the disks would).
rest_get() { rest_edit "$1" "$2" cp_to "$3"; }
rest_put() { rest_edit "$1" "$2" cp "$3"; }
cp_to() { cp "$2" "$1"; }
# cat_sql SQL: SQL run on the catalog (sqlite3 catalog.db, or psql with the
# schema <[catalog] schema>_catalog first in the search path).
cat_sql() {
  if ! on_pg; then sqlite3 "$STORE/catalog.db" "$1"; return; fi
  PGOPTIONS="-c search_path=$(sed -n 's/^schema = //p' "$STORE/evfs.ini")_catalog" \
    psql -X -q -t -A -v ON_ERROR_STOP=1 "$EVFS_PG_CONNINFO_PASSFILE" -c "$1"
}
# sql_hex COL: COL as hex text in cat_sql's dialect (either case: compare with -i).
sql_hex() { if on_pg; then echo "encode($1, 'hex')"; else echo "hex($1)"; fi; }
# pg_dump_store OUT: every row of the store's two schemas, as text, in OUT.
pg_dump_store() {
  local s; s=$(sed -n 's/^schema = //p' "$STORE/evfs.ini")
  pg_dump -a -n "${s}_catalog" -n "${s}_kms" "$EVFS_PG_CONNINFO_PASSFILE" >"$1"
}
# pg_grants [list]: how many privileges on the store's schemas <S>_catalog and
# <S>_kms are granted to a role other than their owner, PUBLIC included (the
# database's counterpart of 0600 files; with "list": which).
pg_grants() {
  local s what="count(*)"; s=$(sed -n 's/^schema = //p' "$STORE/evfs.ini")
  [ -z "${1:-}" ] || what="string_agg(n.nspname || ' ' || a.grantee::regrole || ' ' || a.privilege_type, ', ')"
  psql -X -q -t -A -v ON_ERROR_STOP=1 "$EVFS_PG_CONNINFO_PASSFILE" -c "SELECT $what
    FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
    WHERE n.nspname IN ('${s}_catalog', '${s}_kms') AND a.grantee <> n.nspowner"
}
finish() { echo "$PASS passed, 0 failed"; }
