#!/usr/bin/env bash
# Several real connections move the same 10 entities at once (fire and plain
# UPDATE, some refused); afterwards every history must replay as a chain
# ending in the column's value, with one history row per success.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
source scripts/throwaway-pg.sh
psql -X -q -v ON_ERROR_STOP=1 -f tests/concurrency/setup.sql >/dev/null
"$PGBIN/pgbench" -n -c "${CLIENTS:-6}" -j 2 -T "${SECONDS_TO_RUN:-8}" \
  -f tests/concurrency/move.pgbench | grep -E "clients|processed|failed" || true
results=$(psql -X -At -F ' ' -f tests/concurrency/check.sql)
echo "$results"
if grep -q FAIL <<<"$results"; then exit 1; fi
