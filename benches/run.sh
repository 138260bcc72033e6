#!/usr/bin/env bash
# Runs the benchmarks of BENCH.md on throwaway clusters and writes the
# report to benches/results/: `bash benches/run.sh` (short mode, a couple of
# minutes, for checking a change) or `bash benches/run.sh --full` (the
# results file). W6 is repeated on PostgreSQL 18 when benches/pg18.sh can
# provide one (FSM_BENCH_PG18=0 skips it). FSM_BENCH_PG_CONFIG names
# another PostgreSQL 15 install to build for and run on (say a copy, so a
# long run is not disturbed by test builds installed into the system one).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=short
[ "${1:-}" = "--full" ] && mode=full

bash scripts/setup.sh
pg_config=${FSM_BENCH_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
cargo pgrx install --release --pg-config "$pg_config" >&2
parts=$(mktemp -d /tmp/fsm-bench.XXXXXX)
trap 'rm -rf "$parts"' EXIT

# Durable commits (fsync on) so synchronous_commit=on means what users get;
# big enough WAL and buffers that checkpoints do not land inside a round;
# no JIT, whose compile time would swamp the read workloads.
export FSM_PG_OPTS="-c fsync=on -c shared_buffers=512MB -c max_wal_size=8GB -c checkpoint_timeout=1h -c jit=off"
(
  FSM_PGBIN=$("$pg_config" --bindir)
  export FSM_PGBIN
  source scripts/throwaway-pg.sh
  python3 benches/runner.py measure --mode "$mode" --out "$parts/1-pg15.json"
)
if [ "${FSM_BENCH_PG18:-1}" != 0 ]; then
  if pg18_bin=$(bash benches/pg18.sh | tail -n 1) && [ -x "$pg18_bin/postgres" ]; then
    (
      export FSM_PGBIN=$pg18_bin
      source scripts/throwaway-pg.sh
      python3 benches/runner.py measure --mode "$mode" --workloads w6 --pg18 --out "$parts/2-pg18.json"
    )
  else
    echo "benches: no PostgreSQL 18 (benches/pg18.sh failed); W6 runs on 15 only" >&2
  fi
fi

suffix=$([ "$mode" = full ] && echo "" || echo "-short")
out="benches/results/$(date +%F)$suffix.md"
python3 benches/runner.py report "$parts"/*.json --out "$out" \
  --commit "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src sql benches || echo +changes)" \
  --machine "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "benches: wrote $out" >&2
