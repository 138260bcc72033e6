#!/usr/bin/env bash
# The main job: build and install fsm into the local PostgreSQL 15, start a
# throwaway cluster, run examples/quickstart.sql and show what it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo pgrx install --pg-config /usr/lib/postgresql/15/bin/pg_config
source scripts/throwaway-pg.sh
psql -X -q -f examples/quickstart.sql
