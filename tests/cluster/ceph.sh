#!/usr/bin/env bash
# A throwaway single-node Ceph for tests that need the real librados (no
# mocks): one mon, one memstore OSD, auth none, msgr2 on 127.0.0.1 only,
# everything (config, mon store, OSD data, logs, admin sockets) in a mktemp
# dir.  `ceph.sh run -- CMD...` waits until a pool takes a write and reads
# it back, runs CMD with EVFS_CEPH_CONF and EVFS_CEPH_POOL, then stops
# exactly the processes it started and removes the dir (EXIT trap, signals,
# and a watchdog for SIGKILL).  Exit 77 = skipped (said loudly), unless
# CI=true or EVFS_CLUSTER_REQUIRED=1.  See tests/cluster/README.md.
CL_NAME=ceph
. "$(dirname "$0")/lib.sh"

[ "${1:-}" = run ] && [ "${2:-}" = -- ] && [ $# -ge 3 ] || usage_run
shift 2

TIMEOUT=${EVFS_CLUSTER_TIMEOUT:-60}
POOL=${EVFS_CEPH_POOL:-evfs}

need ceph-mon ceph-osd ceph monmaptool rados uuidgen timeout
[ -n "$(cl_python)" ] || skip "needs python3 (free ports)"
[ -r /dev/urandom ] || skip "needs /dev/urandom"
PORT=$(free_port 2>/dev/null) || skip "cannot bind a TCP socket on 127.0.0.1"

cl_setup
C=$CL_DIR
mkdir -p "$C/mon/ceph-a" "$C/osd/ceph-0" "$C/run" "$C/crash"
FSID=$(uuidgen)
CONF=$C/ceph.conf
cat >"$CONF" <<EOF
# throwaway test cluster made by tests/cluster/ceph.sh
[global]
fsid = $FSID
mon_host = [v2:127.0.0.1:$PORT]
mon_initial_members = a
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv4 = true
ms_bind_ipv6 = false
ms_bind_msgr1 = false
ms_bind_msgr2 = true
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = $C/keyring
run_dir = $C/run
crash_dir = $C/crash
pid_file = $C/run/\$name.pid
admin_socket = $C/run/\$name.asok
log_file = $C/log/\$name.log
log_to_stderr = false
err_to_stderr = true
log_to_syslog = false
mon_cluster_log_to_file = false
mon_cluster_log_to_syslog = false
mon_data = $C/mon/\$cluster-\$id
osd_data = $C/osd/\$cluster-\$id
osd_objectstore = memstore
memstore_device_bytes = ${EVFS_CEPH_MEMSTORE_BYTES:-1073741824}
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
osd_crush_update_on_start = true
osd_pool_default_crush_rule = -1
mon_osd_down_out_interval = 0
debug_ms = 0
debug_mon = 1
debug_osd = 1

[client]
log_file = $C/log/client.\$pid.log
admin_socket =
EOF
: >"$C/keyring"
export CEPH_CONF=$CONF
# the ceph CLI is a client: bounded, never waits on a dead mon for long
cephq() { timeout 20 ceph --connect-timeout 10 "$@"; }

say "fsid $FSID, mon on 127.0.0.1:$PORT (msgr2), dir $C"
monmaptool --create --clobber --fsid "$FSID" --addv a "[v2:127.0.0.1:$PORT]" "$C/monmap" \
  >"$C/log/monmaptool.log" 2>&1 || die "monmaptool --create failed"
ceph-mon -c "$CONF" --mkfs -i a --monmap "$C/monmap" >"$C/log/mon-mkfs.log" 2>&1 ||
  die "ceph-mon --mkfs failed"
spawn ceph-mon "$C/log/mon.a.stderr" ceph-mon -f -c "$CONF" -i a
wait_until "$TIMEOUT" "the mon to answer (ceph mon stat)" cephq mon stat
say "mon up (pid $SPAWNED)"

OSD_UUID=$(uuidgen)
OSD_ID=$(cephq osd new "$OSD_UUID" 2>>"$C/log/ceph-cli.log") || die "ceph osd new failed"
[ "$OSD_ID" = 0 ] || die "ceph osd new gave id '$OSD_ID', expected 0"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$C/log/osd-mkfs.log" 2>&1 ||
  die "ceph-osd --mkfs failed"
spawn ceph-osd "$C/log/osd.0.stderr" ceph-osd -f -c "$CONF" -i 0

osd_up() { cephq osd stat -f json | grep -q '"num_up_osds":1'; }
wait_until "$TIMEOUT" "osd.0 to be up (ceph osd stat)" osd_up
say "osd.0 up (pid $SPAWNED)"

cephq osd pool create "$POOL" 8 8 >>"$C/log/ceph-cli.log" 2>&1 || die "ceph osd pool create $POOL failed"
cephq osd pool application enable "$POOL" evfs >>"$C/log/ceph-cli.log" 2>&1 ||
  die "ceph osd pool application enable failed"

# usable = a write and a read of an object come back (every PG it maps to
# is active); rados blocks until then, bounded by timeout(1).
echo "evfs cluster probe $FSID" >"$C/probe.in"
probe() {
  timeout 10 rados -p "$POOL" put evfs-probe "$C/probe.in" &&
    timeout 10 rados -p "$POOL" get evfs-probe "$C/probe.out" &&
    cmp -s "$C/probe.in" "$C/probe.out" &&
    timeout 10 rados -p "$POOL" rm evfs-probe
}
wait_until "$TIMEOUT" "pool $POOL to take a write and read it back (rados put/get)" probe
say "pool $POOL usable"

export EVFS_CEPH_CONF=$CONF EVFS_CEPH_POOL=$POOL
run_cmd "$@"
