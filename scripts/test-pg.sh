#!/usr/bin/env bash
# The in-database layers of scripts/test.sh on one PostgreSQL, chosen by
# FSM_PG (15 or 18, scripts/pg-env.sh): clippy for that version's build,
# #[pg_test], then, with fsm installed, pg_regress, isolation specs,
# concurrency, fuzz, pg_cron, pgbouncer, the Python integrations, the live
# consumer, the Rust client, dump/restore, the operations page (tests/ops),
# SIGKILL faults and the upgrade test, each against a throwaway cluster of
# its own.
# Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg-env.sh
say() { echo "== PostgreSQL $FSM_PG: $*"; }

say "cargo clippy (every unsafe block documented: Cargo.toml [lints])"
cargo clippy --all-targets $PG_FEATURES -- -D warnings

say "#[pg_test] (in-database)"
if [ "$(id -u)" -eq 0 ]; then
  # initdb refuses root: run the test cluster as the postgres OS user.
  pgdata=$(mktemp -d /tmp/fsm-pgtest.XXXXXX)
  chown postgres "$pgdata"
  chmod o+rx "$HOME" 2>/dev/null || true
  cargo pgrx test "pg$FSM_PG" --runas postgres --pgdata "$pgdata/data"
  rm -rf "$pgdata"
else
  cargo pgrx test "pg$FSM_PG"
fi

say "install, then pg_regress, isolation specs, concurrency, fuzz, pg_cron and pgbouncer against throwaway clusters"
install_fsm
bash scripts/regress.sh
bash tests/isolation/run.sh
bash tests/concurrency/run.sh
bash tests/fuzz/run.sh
bash tests/cron/run.sh
bash tests/pgbouncer/run.sh
say "the Python integrations: Django (its test runner) and SQLAlchemy/Alembic (unittest), from PyPI"
bash integrations/django/run-tests.sh
bash integrations/sqlalchemy/run-tests.sh
say "the LISTEN/NOTIFY consumer, killed and restarted mid-stream"
bash tests/consumer/run.sh
say "the Rust client example (tokio-postgres from crates.io)"
bash integrations/rust-client/run-tests.sh
bash benches/django/run.sh --smoke
say "dump and restore, the operations page (docs/operations.md), SIGKILL faults"
bash tests/dump_restore/run.sh
bash tests/ops/run.sh
bash tests/faults/run.sh
say "upgrade from the last release (builds it; leaves the current version installed)"
bash tests/upgrade/run.sh
say "passed"
