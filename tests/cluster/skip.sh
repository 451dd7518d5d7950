#!/usr/bin/env bash
# cluster_smoke when cmake found no librados/libpq headers: says why and
# exits 77 (skipped), or 1 when CI=true or EVFS_CLUSTER_REQUIRED=1 -- the
# same rule as ceph.sh and pg.sh.
CL_NAME=cluster_smoke
. "$(dirname "$0")/lib.sh"
skip "${1:-check_cluster was not built} (apt-get install librados-dev libpq-dev, then re-run cmake)"
