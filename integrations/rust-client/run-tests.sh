#!/usr/bin/env bash
# The Rust client (tokio-postgres) example's checks against a throwaway
# PostgreSQL with fsm installed (scripts/test-pg.sh installs it first; the
# server is FSM_PG's, scripts/pg-env.sh): CREATE EXTENSION fsm, then in this
# crate cargo fmt --check, cargo clippy (warnings are errors), cargo test
# (the integration tests in tests/, which connect through the PG* variables
# throwaway-pg.sh sets) and cargo run (the example in src/main.rs, which
# exits non-zero when it does not go as it says). The crate builds into its
# own target/ whatever CARGO_TARGET_DIR the caller or pg-env.sh set.
# Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
source scripts/throwaway-pg.sh
# The tests and the example connect from DATABASE_URL when it is set:
# here they must use the throwaway cluster.
unset DATABASE_URL
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION fsm'

cd integrations/rust-client
export CARGO_TARGET_DIR=$PWD/target
say() { echo "== rust-client (PostgreSQL $FSM_PG): $*"; }
say "cargo fmt --check"
cargo fmt --check
say "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
say "cargo test"
cargo test
say "cargo run (the example)"
cargo run
say "passed"
