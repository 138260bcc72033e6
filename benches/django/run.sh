#!/usr/bin/env bash
# The Django order lifecycle bench (benches/django/bench.py): fsm through
# fsm-django against django-fsm-2 + django-fsm-log, one throwaway
# PostgreSQL 15 with the settings of benches/run.sh, fsm built and
# installed first. `bash benches/django/run.sh` (short), `--full` (writes
# benches/results/<date>-django.md), `--smoke` (a few lifecycles: that it
# runs and both sides do the whole work; part of the test command).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=short
case "${1:-}" in --full) mode=full ;; --smoke) mode=smoke ;; esac
if [ "$mode" != smoke ]; then
  bash scripts/setup.sh
  cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config >&2
fi
venv=$(bash integrations/django/venv.sh)
export FSM_PG_OPTS="-c fsync=on -c shared_buffers=512MB -c max_wal_size=8GB -c checkpoint_timeout=1h -c jit=off"
source scripts/throwaway-pg.sh
out=
[ "$mode" = full ] && out="benches/results/$(date +%F)-django.md"
"$venv/bin/python" benches/django/bench.py --mode "$mode" ${out:+--out "$out"}
[ -z "$out" ] || echo "benches: wrote $out" >&2
