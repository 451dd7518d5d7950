#!/usr/bin/env bash
# The watchdog of ceph.sh and pg.sh (started by lib.sh's cl_setup as
# `setsid -f watchdog.sh NAME DIR` with the read end of a pipe as stdin whose
# only writer is the script): when the pipe says EOF the script is gone;
# if DIR is still there and not marked stopped, the script died without its
# EXIT trap (SIGKILL, or ctest's timeout killing the test's process tree):
# stop the processes DIR/pids records (start times checked, so no recycled
# PID is hit) and remove DIR.
CL_NAME=$1
. "$(dirname "$0")/lib.sh"
CL_DIR=$2
set +e
# PIPE: the script's stderr may be a pipe whose reader (ctest) is gone by now
trap '' INT HUP TERM PIPE
while read -r _; do :; done
if [ -d "$CL_DIR" ] && [ ! -e "$CL_DIR/stopped" ]; then
  echo "[$CL_NAME watchdog] the script died without cleaning up: stopping its processes, removing $CL_DIR" >&2
  stop_all 3
  [ "${EVFS_CLUSTER_KEEP:-0}" = 1 ] || remove_dir
fi
exit 0
