#!/usr/bin/env bash
# Source this: starts a throwaway PostgreSQL cluster (15 from Debian, or the
# install whose bin/ is FSM_PGBIN) in a temporary directory and stops and
# removes it when the calling script exits. FSM_PG_OPTS adds server options
# (the default turns fsync off: tests need no durability).
# As root, the cluster belongs to the `postgres` OS user (initdb refuses root).
# Sets PGHOST, PGPORT, PGUSER, PGDATABASE for psql, and defines `as_pg_user`.
PGBIN=${FSM_PGBIN:-/usr/lib/postgresql/15/bin}
PG_TMP=$(mktemp -d /tmp/fsm-pg.XXXXXX)
export PGPORT=${FSM_PGPORT:-$((20000 + RANDOM % 20000))}
export PGHOST=$PG_TMP
export PGDATABASE=postgres

as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then sudo -u postgres -E env PATH="$PATH" "$@"; else "$@"; fi
}
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$PG_TMP"
  export PGUSER=postgres
else
  export PGUSER=$(id -un)
fi

stop_throwaway_pg() {
  as_pg_user "$PGBIN/pg_ctl" -D "$PG_TMP/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_TMP"
}
trap stop_throwaway_pg EXIT

as_pg_user "$PGBIN/initdb" -D "$PG_TMP/data" -A trust -U "$PGUSER" >/dev/null
# RUST_BACKTRACE=0: errors keep PostgreSQL's own DETAIL, so expected test
# output does not depend on the caller's environment.
as_pg_user env RUST_BACKTRACE=0 "$PGBIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w \
  -o "-p $PGPORT -k $PG_TMP -c listen_addresses='' -c max_prepared_transactions=4 ${FSM_PG_OPTS:--c fsync=off}" start >/dev/null
