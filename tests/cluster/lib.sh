# Shared by ceph.sh and pg.sh (sourced): the skip rule, free loopback
# ports, bounded waits, and the bookkeeping that lets a script stop exactly
# the processes it started -- from its EXIT trap, on a signal, and (through
# a watchdog) when the script itself is SIGKILLed.
#
# Every long-lived process is started with `spawn`, which records
# "PID STARTTIME NAME" (STARTTIME: field 22 of /proc/PID/stat) in
# $CL_DIR/pids; a process is signalled only while its PID still has that
# start time, so a recycled PID is never hit.  The watchdog is a child that
# reads a pipe whose only writer is the script (spawned processes get the
# write end closed): EOF means the script is gone, however it died.
set -euo pipefail

CL_NAME=${CL_NAME:-cluster}
CL_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CL_DIR=
CL_CMD_PID=
CL_T0=$(date +%s.%N)

say() { echo "[$CL_NAME $(cl_elapsed)s] $*" >&2; }
cl_elapsed() { awk -v a="$CL_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# The skip rule: exit 77 with a loud SKIPPED line, or a failure when the
# cluster is required (CI=true or EVFS_CLUSTER_REQUIRED=1).
skip() {
  if [ "${CI:-}" = true ] || [ "${EVFS_CLUSTER_REQUIRED:-0}" = 1 ]; then
    echo "FAILED: $CL_NAME: $* (CI=true or EVFS_CLUSTER_REQUIRED=1: a missing cluster is a failure, not a skip)" >&2
    exit 1
  fi
  echo "SKIPPED: $CL_NAME: $* -- the cluster tests did not run" >&2
  exit 77
}

# die MSG: a startup failure (the binaries are there but something broke):
# print the tails of the daemon logs, then exit 1 (the EXIT trap cleans up).
die() {
  echo "FAILED: $CL_NAME: $*" >&2
  if [ -n "$CL_DIR" ] && [ -d "$CL_DIR/log" ]; then
    local f
    for f in "$CL_DIR"/log/*; do
      [ -s "$f" ] || continue
      echo "--- last 30 lines of $f:" >&2
      tail -n 30 "$f" >&2
    done
  fi
  exit 1
}

need() { local b; for b in "$@"; do command -v "$b" >/dev/null 2>&1 || skip "needs $b"; done; }

cl_python() { if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  "$(cl_python)" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# starttime PID: field 22 of /proc/PID/stat (empty when PID is gone).
starttime() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  s=${s##*) }            # past "pid (comm) ", comm may hold spaces
  set -- $s              # $1 is field 3 (state)
  [ "$1" = Z ] && return 0
  echo "${20}"
}

# alive PID STARTTIME: PID still runs and is still the process we started.
alive() { [ "$(starttime "$1")" = "$2" ]; }

# spawn [-s SIG] NAME LOGFILE CMD...: start CMD in the background (stdin
# /dev/null, output to LOGFILE, the watchdog pipe closed), record it with
# the signal that stops it (default TERM); PID in $SPAWNED.
spawn() {
  local sig=TERM
  if [ "$1" = -s ]; then sig=$2; shift 2; fi
  local name=$1 log=$2; shift 2
  "$@" </dev/null >>"$log" 2>&1 9>&- &
  SPAWNED=$!
  local st=
  st=$(starttime "$SPAWNED")
  [ -n "$st" ] || { wait "$SPAWNED" 2>/dev/null || true; die "$name exited at once (log: $log)"; }
  echo "$SPAWNED $st $name $sig" >>"$CL_DIR/pids"
}

# stop_all GRACE: stop the recorded processes one at a time in the reverse
# order of their start (the command first, then the OSD before its mon, so
# each can still say goodbye to the one it depends on): its stop signal,
# up to GRACE seconds, then SIGKILL.  Usable from the script and from the
# watchdog (polls /proc, no `wait`: they may not be its children).
stop_all() {
  local grace=${1:-10} pid st name sig i j lines=()
  [ -f "$CL_DIR/pids" ] || return 0
  mapfile -t lines <"$CL_DIR/pids"
  for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
    read -r pid st name sig <<<"${lines[$i]}"
    alive "$pid" "$st" || continue
    kill -"${sig:-TERM}" "$pid" 2>/dev/null || true
    for ((j = 0; j < grace * 20; j++)); do alive "$pid" "$st" || break; sleep 0.05; done
    if alive "$pid" "$st"; then
      echo "[$CL_NAME] $name (pid $pid) still runs ${grace}s after SIG${sig:-TERM}: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for ((j = 0; j < 100; j++)); do alive "$pid" "$st" || break; sleep 0.05; done
    fi
  done
}

# rm -rf of our own temp dir only (never an empty or unexpected path).
remove_dir() {
  case "$CL_DIR" in /tmp/evfs-cluster-*|"${TMPDIR:-/tmp}"/evfs-cluster-*) rm -rf -- "$CL_DIR";; esac
}

cl_cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  if [ -n "$CL_DIR" ] && [ -d "$CL_DIR" ]; then
    local t0=$SECONDS
    stop_all 10
    # reap them (only them: a bare `wait` would also wait for the watchdog,
    # which waits for us)
    local pid _rest
    while read -r pid _rest; do wait "$pid" 2>/dev/null; done <"$CL_DIR/pids"
    if [ "${EVFS_CLUSTER_KEEP:-0}" = 1 ]; then
      : >"$CL_DIR/stopped"   # tells the watchdog there is nothing left to do
      say "stopped what it started in $((SECONDS - t0)) s; EVFS_CLUSTER_KEEP=1: left $CL_DIR"
    else
      remove_dir
      say "stopped what it started and removed its dir in $((SECONDS - t0)) s"
    fi
  fi
  exit "$rc"
}

cl_signal() {
  say "caught SIG$1: stopping what this script started"
  exit $((128 + $2))
}

# cl_setup: the temp dir, the traps and the watchdog.
cl_setup() {
  CL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/evfs-cluster-$CL_NAME.XXXXXX")
  mkdir -p "$CL_DIR/log"
  : >"$CL_DIR/pids"
  trap cl_cleanup EXIT
  trap 'cl_signal INT 2' INT
  trap 'cl_signal TERM 15' TERM
  trap 'cl_signal HUP 1' HUP
  # The watchdog (watchdog.sh): blocks on a pipe only this script writes
  # to.  At EOF the script is gone; if it died without its EXIT trap
  # (SIGKILL) the watchdog stops its processes and removes the dir.
  # setsid -f: a session of its own and not our child, so a kill of our
  # process group or tree (ctest's timeout) does not take it along.
  exec 9> >(exec setsid -f bash "$CL_HERE/watchdog.sh" "$CL_NAME" "$CL_DIR")
}

# wait_until SECONDS WHAT CMD...: retry CMD every 0.5 s until it succeeds;
# die with WHAT (and the log tails) when SECONDS have passed.
wait_until() {
  local secs=$1 what=$2; shift 2
  local end=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "timed out after ${secs}s waiting for $what"
    cl_check_daemons
    sleep 0.5
  done
}

# cl_check_daemons: die early when a daemon we started has exited.
cl_check_daemons() {
  local pid st name
  while read -r pid st name _; do
    [ "$name" = cmd ] && continue
    alive "$pid" "$st" || die "$name (pid $pid) exited"
  done <"$CL_DIR/pids"
}

# run_cmd CMD...: run the test command (stdin kept: `run -- bash` works),
# record it so a signal or the watchdog stops it too; exit with its status.
run_cmd() {
  say "ready; running: $*"
  exec 3<&0
  "$@" <&3 3<&- 9>&- &
  CL_CMD_PID=$!
  echo "$CL_CMD_PID $(starttime "$CL_CMD_PID") cmd TERM" >>"$CL_DIR/pids"
  exec 3<&-
  local rc=0
  wait "$CL_CMD_PID" || rc=$?
  # a trapped signal interrupts `wait` with 128+n; the trap has exited by then
  say "command exited with status $rc"
  exit "$rc"
}

usage_run() {
  echo "usage: $0 run -- CMD [ARGS...]" >&2
  exit 2
}
