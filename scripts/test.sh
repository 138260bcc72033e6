#!/usr/bin/env bash
# Runs every test: formatting, unit tests of the pure model, #[pg_test]s,
# the pg_regress specification and the concurrency test. Installs what is
# missing first (scripts/setup.sh). Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== unit tests (pure model, ids)"
cargo test --lib --no-default-features --features pg15 -- machine:: uuid7::

echo "== #[pg_test] (in-database)"
if [ "$(id -u)" -eq 0 ]; then
  # initdb refuses root: run the test cluster as the postgres OS user.
  pgdata=$(mktemp -d /tmp/fsm-pgtest.XXXXXX)
  chown postgres "$pgdata"
  chmod o+rx "$HOME" 2>/dev/null || true
  cargo pgrx test pg15 --runas postgres --pgdata "$pgdata/data"
  rm -rf "$pgdata"
else
  cargo pgrx test pg15
fi

echo "== install, then pg_regress and concurrency against throwaway clusters"
cargo pgrx install --pg-config "$PG_CONFIG"
bash scripts/regress.sh
bash tests/concurrency/run.sh
echo "== all tests passed"
