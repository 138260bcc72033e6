#!/usr/bin/env bash
# Isolation specs (pg_isolation_regress): two or three sessions step by
# step, for races the single-session pg_regress files cannot show.
# Needs fsm installed (cargo pgrx install); FSM_PG=18 runs them on 18. FSM_KEEP_RESULTS=1 copies
# results/ next to expected/ on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
source scripts/throwaway-pg.sh
out=$(mktemp -d /tmp/fsm-isolation.XXXXXX)
chmod 777 "$out"
psql -X -q -c 'CREATE DATABASE fsm_isolation'
psql -X -q -d fsm_isolation -c 'CREATE EXTENSION fsm'
psql -X -q -v ON_ERROR_STOP=1 -d fsm_isolation -f tests/isolation/machines.sql >/dev/null
specs=$(cd tests/isolation/specs && ls *.spec | sed 's/\.spec$//')
status=0
"$PG_ISOLATION/pg_isolation_regress" --use-existing --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" \
  --dbname=fsm_isolation --bindir="$PG_ISOLATION" \
  --inputdir=tests/isolation --outputdir="$out" $specs || status=$?
if [ $status -ne 0 ]; then
  head -n 200 "$out/regression.diffs" 2>/dev/null || true
  [ -n "${FSM_KEEP_RESULTS:-}" ] && cp -r "$out/results" tests/isolation/
fi
rm -rf "$out"
exit $status
