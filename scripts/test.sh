#!/usr/bin/env bash
# Runs every test: formatting, clippy, unit tests of the pure model,
# #[pg_test]s, the pg_regress specification (security suite included), the
# isolation specs, the concurrency test, the fuzz test of the SQL surface,
# dump and restore, SIGKILL faults, and the upgrade from the last release.
# Installs what is missing first (scripts/setup.sh). Exits non-zero when
# anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (every unsafe block documented: Cargo.toml [lints])"
cargo clippy --all-targets --no-default-features --features pg15 -- -D warnings

echo "== unit tests (pure model, ids, JSON, quoting)"
cargo test --lib --no-default-features --features pg15 -- machine:: uuid7:: json:: sql::

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

echo "== install, then pg_regress, isolation specs, concurrency and fuzz against throwaway clusters"
cargo pgrx install --pg-config "$PG_CONFIG"
bash scripts/regress.sh
bash tests/isolation/run.sh
bash tests/concurrency/run.sh
bash tests/fuzz/run.sh
echo "== dump and restore, SIGKILL faults"
bash tests/dump_restore/run.sh
bash tests/faults/run.sh
echo "== upgrade from the last release (builds it; leaves the current version installed)"
bash tests/upgrade/run.sh
echo "== all tests passed"
