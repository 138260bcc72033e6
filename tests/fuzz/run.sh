#!/usr/bin/env bash
# Property/fuzz test of fsm's SQL surface: thousands of generated, hostile
# calls (as the superuser and as an unprivileged role) against a throwaway
# cluster. Fails on any XX000 (internal_error), lost connection, crashed
# backend, or PANIC/FATAL in the server log; every other SQLSTATE is fine.
# Needs fsm installed (cargo pgrx install). Arguments go to fuzz.py, e.g.
#   bash tests/fuzz/run.sh --seed 7 --count 5000
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
source scripts/throwaway-pg.sh
export FSM_PG_LOG="$PG_TMP/log"
psql -X -q -v ON_ERROR_STOP=1 \
  -c "CREATE DATABASE fsm_fuzz TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
python3 tests/fuzz/fuzz.py --dbname fsm_fuzz "$@"
