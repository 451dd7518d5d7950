#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests that need the real libpq (no
# mocks): initdb in a mktemp dir (as an unprivileged user when run as root:
# postgres refuses root), TCP on 127.0.0.1 only at a free port, the unix
# socket in the temp dir, fsync off.  `pg.sh run -- CMD...` waits until
# pg_isready answers, creates the database evfs, runs CMD with
# EVFS_PG_CONNINFO, then stops exactly that server and removes the dir
# (EXIT trap, signals, a watchdog for SIGKILL).  Exit 77 = skipped (said
# loudly), unless CI=true or EVFS_CLUSTER_REQUIRED=1.  See README.md here.
CL_NAME=pg
. "$(dirname "$0")/lib.sh"

[ "${1:-}" = run ] && [ "${2:-}" = -- ] && [ $# -ge 3 ] || usage_run
shift 2

TIMEOUT=${EVFS_CLUSTER_TIMEOUT:-60}
DB=evfs
DBUSER=evfs

# Debian keeps the server programs out of PATH; take the newest version.
BIN=${EVFS_PG_BINDIR:-}
if [ -z "$BIN" ]; then
  BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$BIN" ] || { b=$(command -v initdb 2>/dev/null) && BIN=$(dirname "$b"); } || true
fi
[ -n "$BIN" ] && [ -x "$BIN/initdb" ] && [ -x "$BIN/postgres" ] ||
  skip "needs the PostgreSQL server (initdb, postgres: apt-get install postgresql)"
need pg_isready psql timeout od
[ -n "$(cl_python)" ] || skip "needs python3 (free ports)"
[ -r /dev/urandom ] || skip "needs /dev/urandom"
PORT=$(free_port 2>/dev/null) || skip "cannot bind a TCP socket on 127.0.0.1"

# postgres will not run as root: drop to postgres (Debian's package makes
# it) or nobody, with setpriv (execs, so the PID we record is the server's).
AS=()
RUNUSER=$(id -un)
if [ "$(id -u)" = 0 ]; then
  need setpriv
  for u in ${EVFS_PG_USER:-} postgres nobody; do id -u "$u" >/dev/null 2>&1 && { RUNUSER=$u; break; }; done
  [ "$RUNUSER" != root ] || skip "running as root and no unprivileged user (postgres, nobody) to run the server as"
  AS=(setpriv --reuid="$RUNUSER" --regid="$(id -g "$RUNUSER")" --init-groups --reset-env)
fi

cl_setup
D=$CL_DIR
# the server's user must reach its dirs below ours (mktemp makes it 0700)
chmod 0711 "$D"
mkdir -p "$D/data" "$D/sock"
chmod 0700 "$D/data" "$D/sock"
PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$PASSWORD" >"$D/pwfile"
chmod 0600 "$D/pwfile"
if [ "${#AS[@]}" -gt 0 ]; then chown "$RUNUSER" "$D/data" "$D/sock" "$D/pwfile"; fi

say "initdb as $RUNUSER in $D/data ($BIN), port $PORT"
# TCP needs the password (scram); the socket, in a 0700 dir of the server's
# user, trusts whoever can reach it (that user and root).
"${AS[@]}" env LC_ALL=C "$BIN/initdb" -D "$D/data" -U "$DBUSER" --pwfile="$D/pwfile" \
  --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C --no-sync \
  </dev/null >"$D/log/initdb.log" 2>&1 || die "initdb failed"
rm -f "$D/pwfile"
cat >>"$D/data/postgresql.conf" <<EOF

# throwaway test server made by tests/cluster/pg.sh
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$D/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
dynamic_shared_memory_type = mmap
shared_buffers = 16MB
max_connections = 20
logging_collector = off
log_destination = 'stderr'
EOF

# SIGINT = fast shutdown (SIGTERM would wait for clients to go away)
spawn -s INT postgres "$D/log/postgres.log" "${AS[@]}" "$BIN/postgres" -D "$D/data"
PG_PID=$SPAWNED
wait_until "$TIMEOUT" "postgres to accept connections (pg_isready)" \
  pg_isready -q -h 127.0.0.1 -p "$PORT" -U "$DBUSER" -d postgres -t 2
say "postgres up (pid $PG_PID)"

export PGPASSWORD=$PASSWORD
timeout 30 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$DBUSER" -d postgres \
  -c "CREATE DATABASE $DB" >>"$D/log/psql.log" 2>&1 || die "CREATE DATABASE $DB failed (see psql.log)"
unset PGPASSWORD
say "database $DB created"

export EVFS_PG_CONNINFO="host=127.0.0.1 port=$PORT dbname=$DB user=$DBUSER password=$PASSWORD connect_timeout=10"
# The same without the password, which libpq reads from a passfile (what
# evfs.ini takes: it holds no secrets).
printf '127.0.0.1:%s:%s:%s:%s\n' "$PORT" "$DB" "$DBUSER" "$PASSWORD" >"$D/pgpass"
chmod 0600 "$D/pgpass"
export EVFS_PG_CONNINFO_PASSFILE="host=127.0.0.1 port=$PORT dbname=$DB user=$DBUSER passfile=$D/pgpass connect_timeout=10"
run_cmd "$@"
