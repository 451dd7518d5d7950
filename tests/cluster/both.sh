#!/usr/bin/env bash
# Both throwaway services for tests that need librados and libpq together:
# `both.sh run -- CMD...` nests pg.sh (outside: starts in about a second)
# and ceph.sh, so CMD sees EVFS_PG_CONNINFO, EVFS_CEPH_CONF and
# EVFS_CEPH_POOL.  Each script stops exactly what it started; exit 77 =
# skipped (said loudly) unless CI=true or EVFS_CLUSTER_REQUIRED=1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ "${1:-}" = run ] && [ "${2:-}" = -- ] && [ $# -ge 3 ] || { echo "usage: $0 run -- CMD [ARGS...]" >&2; exit 2; }
shift 2
exec bash "$HERE/pg.sh" run -- bash "$HERE/ceph.sh" run -- "$@"
