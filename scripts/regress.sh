#!/usr/bin/env bash
# Runs the pg_regress specification (tests/pg_regress) against a throwaway
# cluster. Needs fsm installed (cargo pgrx install). FSM_PG=18 runs it on
# PostgreSQL 18 (scripts/pg-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg-env.sh
source scripts/throwaway-pg.sh
out=$(mktemp -d /tmp/fsm-regress.XXXXXX)
chmod 777 "$out"
tests=$(cd tests/pg_regress/sql && ls *.sql | sed 's/\.sql$//')
status=0
psql -X -q -c 'CREATE DATABASE fsm_regress'
"$PG_TESTBIN/pg_regress" \
  --use-existing --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" --dbname=fsm_regress \
  --bindir="$PGBIN" --inputdir=tests/pg_regress --outputdir="$out" $tests || status=$?
if [ $status -ne 0 ]; then
  # head reads the file itself: under pipefail, `cat | head` would end the
  # script with SIGPIPE before the results are kept.
  head -n 200 "$out/regression.diffs" 2>/dev/null || true
  [ -n "${FSM_KEEP_RESULTS:-}" ] && cp -r "$out/results" tests/pg_regress/ 
fi
rm -rf "$out"
exit $status
