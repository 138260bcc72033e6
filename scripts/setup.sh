#!/usr/bin/env bash
# Installs what building and testing fsm needs, idempotently: Debian packages,
# cargo-pgrx 0.18.0 and `cargo pgrx init` against the system PostgreSQL 15.
# Safe to run again: every step checks first. Works as root and as a user
# with sudo.
set -euo pipefail

PGRX_VERSION=0.18.0
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron pgbouncer clang libclang-dev sudo pkg-config)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian package starts a cluster on 5432; we never use it, and it must not
# hold the port or the CPU during tests.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  as_root pg_ctlcluster 15 main stop || true
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  echo "setup: installing cargo-pgrx $PGRX_VERSION"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

PGRX_HOME=${PGRX_HOME:-$HOME/.pgrx}
if ! grep -qs "pg15" "$PGRX_HOME/config.toml"; then
  echo "setup: cargo pgrx init --pg15 $PG_CONFIG"
  cargo pgrx init --pg15 "$PG_CONFIG"
fi

# `cargo pgrx install` writes into the system PostgreSQL's directories.
# As an ordinary user, make those writable once, so later runs need no sudo.
if [ "$(id -u)" -ne 0 ]; then
  for d in "$($PG_CONFIG --pkglibdir)" "$($PG_CONFIG --sharedir)/extension"; do
    [ -w "$d" ] || sudo chown "$(id -u)" "$d"
  done
fi
echo "setup: ready"
