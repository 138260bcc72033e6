#!/usr/bin/env bash
# Runs the pg_regress specification (tests/pg_regress) against a throwaway
# cluster. Needs fsm installed (cargo pgrx install).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/throwaway-pg.sh
out=$(mktemp -d /tmp/fsm-regress.XXXXXX)
chmod 777 "$out"
tests=$(cd tests/pg_regress/sql && ls *.sql | sed 's/\.sql$//')
status=0
psql -X -q -c 'CREATE DATABASE fsm_regress'
/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
  --use-existing --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" --dbname=fsm_regress \
  --inputdir=tests/pg_regress --outputdir="$out" $tests || status=$?
if [ $status -ne 0 ]; then
  cat "$out/regression.diffs" 2>/dev/null | head -200
  [ -n "${FSM_KEEP_RESULTS:-}" ] && cp -r "$out/results" tests/pg_regress/ 
fi
rm -rf "$out"
exit $status
