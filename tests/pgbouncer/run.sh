#!/usr/bin/env bash
# fsm through a real pgbouncer (Debian's; scripts/setup.sh installs it) in
# transaction pooling mode with a pool of two server connections, so that
# many clients share two backends and one client's consecutive transactions
# land on different backends. Proves, with exact checks:
#   - SET LOCAL fsm.actor / set_config('fsm.actor', …, true) is recorded on
#     exactly its transaction's history row, under 8+8 concurrent pgbench
#     clients (simple and extended protocol) mixed with clients that set no
#     actor; a session-level SET fsm.actor stays on the backend that ran it:
#     the client's own later transactions miss it, other clients get it;
#   - an idempotency key retried from clients on different backends, and
#     concurrent duplicates, move once and return the same state;
#   - refusals carry the same SQLSTATE, message, DETAIL, HINT and error
#     fields (schema, table, column, constraint) as on a direct connection;
#   - SET LOCAL fsm.event names the event of an ambiguous plain UPDATE;
#   - after the concurrent runs, one history row per transition, each
#     entity's state equal to its last row's to_state;
#   - named prepared statements: pgbouncer before 1.21 (Debian 12 ships
#     1.18) cannot carry them to another backend (26000); unnamed ones
#     (pgbench -M extended, psycopg without prepare) work;
#   - LISTEN for a binding's notify: lost through the transaction pool,
#     delivered directly and through a session-mode pool (a second
#     database entry).
# docs/pgbouncer.md is the guide these checks back.
# Needs fsm installed, pgbouncer and the Python venv of
# integrations/django/venv.sh (psycopg). Exits non-zero on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
command -v pgbouncer >/dev/null || { echo "pgbouncer: not installed (apt-get install pgbouncer)" >&2; exit 1; }
venv=${FSM_VENV:-$HOME/.cache/fsm-venv}
"$venv/bin/python" -c 'import psycopg' 2>/dev/null || venv=$(bash integrations/django/venv.sh | tail -n 1)
source scripts/throwaway-pg.sh
psql -X -q -c 'CREATE DATABASE fsm_pgb'
export PGDATABASE=fsm_pgb
psql -X -q -v ON_ERROR_STOP=1 -f tests/pgbouncer/setup.sql >/dev/null

# pgbouncer, on a unix socket in a directory of its own (no TCP port, so it
# never meets Debian's own pgbouncer service on 6432), as the postgres OS
# user when root (it refuses to run as root). auth_type trust: it still
# wants every user in auth_file; the cluster trusts its socket.
PGB_DIR=$(mktemp -d /tmp/fsm-pgbouncer.XXXXXX)
PGB_PORT=$((20000 + RANDOM % 20000))
[ "$(id -u)" -eq 0 ] && chown postgres "$PGB_DIR"
cat >"$PGB_DIR/pgbouncer.ini" <<INI
[databases]
fsm_pgb = host=$PG_TMP port=$PGPORT dbname=fsm_pgb
fsm_pgb_session = host=$PG_TMP port=$PGPORT dbname=fsm_pgb pool_mode=session

[pgbouncer]
pool_mode = transaction
default_pool_size = 2
max_client_conn = 100
listen_addr =
listen_port = $PGB_PORT
unix_socket_dir = $PGB_DIR
auth_type = trust
auth_file = $PGB_DIR/userlist.txt
admin_users = $PGUSER
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_DIR/pgbouncer.pid
INI
printf '"%s" ""\n"clerk" ""\n' "$PGUSER" >"$PGB_DIR/userlist.txt"

stop_all() {
  if [ -f "$PGB_DIR/pgbouncer.pid" ]; then
    pid=$(cat "$PGB_DIR/pgbouncer.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$PGB_DIR"
  stop_throwaway_pg
}
trap stop_all EXIT
fail() {
  echo "pgbouncer: FAILED $*" >&2
  tail -n 20 "$PGB_DIR/pgbouncer.log" >&2 || true
  exit 1
}

as_pg_user pgbouncer -d -q "$PGB_DIR/pgbouncer.ini"
for _ in $(seq 50); do [ -S "$PGB_DIR/.s.PGSQL.$PGB_PORT" ] && break; sleep 0.1; done
[ -S "$PGB_DIR/.s.PGSQL.$PGB_PORT" ] || fail "pgbouncer did not start"
admin() { psql -X -At -h "$PGB_DIR" -p "$PGB_PORT" -d pgbouncer -c "$1"; }
version=$(admin 'SHOW VERSION')
setting() { admin 'SHOW CONFIG' | awk -F'|' -v k="$1" '$1 == k { print $2 }'; }
pool="pool_mode=$(setting pool_mode) default_pool_size=$(setting default_pool_size)"
PGB_MAX_PREPARED=$(setting max_prepared_statements)
echo "pgbouncer: $version, $pool"
[ "$pool" = "pool_mode=transaction default_pool_size=2" ] || fail "pool settings: $pool"

# 1. Concurrent clients: 8 with literal SET LOCAL (-M simple), then 8 with
# set_config(…, true) (-M extended), a third of each run's transactions
# setting no actor.
B=(-h "$PGB_DIR" -p "$PGB_PORT")
bench() {  # mode, scripts…: 8 clients x 50 transactions, none may fail
  local mode=$1 out
  shift
  out=$(pgbench -n "${B[@]}" -M "$mode" -c 8 -j 2 -t 50 "$@" 2>&1) || { echo "$out" >&2; fail "pgbench -M $mode $*"; }
  grep -q 'actually processed: 400/400' <<<"$out" || { echo "$out" >&2; fail "pgbench -M $mode $*"; }
  echo "pgbouncer: ok pgbench -M $mode $* (8 clients, 400 transactions)"
}
bench simple -f tests/pgbouncer/actors-simple.pgbench@2 -f tests/pgbouncer/anonymous.pgbench@1
bench extended -f tests/pgbouncer/actors-extended.pgbench@2 -f tests/pgbouncer/anonymous.pgbench@1
fires=800  # the two runs' step fires
bench extended -f tests/pgbouncer/duplicates.pgbench
results=$(psql -X -At -F ' ' -v fires=$fires -f tests/pgbouncer/check.sql)
sed 's/^/pgbouncer: /' <<<"$results"
if grep -q FAIL <<<"$results"; then fail "history after the concurrent runs"; fi

# 2. Step by step, on backends forced by holding the other one.
DIRECT_DSN="host=$PG_TMP port=$PGPORT dbname=fsm_pgb" \
BOUNCER_DSN="host=$PGB_DIR port=$PGB_PORT dbname=fsm_pgb" \
SESSION_DSN="host=$PGB_DIR port=$PGB_PORT dbname=fsm_pgb_session" \
PGB_MAX_PREPARED=$PGB_MAX_PREPARED \
  "$venv/bin/python" tests/pgbouncer/cases.py || fail "cases.py"

# 3. The pool stayed at two server connections throughout.
servers=$(admin 'SHOW SERVERS' | awk -F'|' '$2 == "'"$PGUSER"'" && $3 == "fsm_pgb"' | wc -l)
[ "$servers" -le 2 ] || fail "$servers server connections for a pool of 2"
echo "pgbouncer: ok server connections at the end: $servers"
echo "pgbouncer: ok"
