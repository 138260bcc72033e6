#!/usr/bin/env bash
# Upgrades. For every released version in sql/releases, oldest first: builds
# it from its commit, installs it, and makes the machines and bindings of
# bindings.sql, with history, in a database of its own. Then installs the
# current version and runs ALTER EXTENSION fsm UPDATE in each of them
# (PostgreSQL chains the scripts: 0.1.0 -> 0.2.0 -> ...). Checks:
#   - the SQL is versioned: if Cargo.toml still says the last released
#     version, a fresh install must equal that release's (else: bump the
#     version and write sql/fsm--<released>--<new>.sql); otherwise that
#     script must exist;
#   - from each release, the upgraded extension's schema equals a fresh
#     install's (describe.sql), and so do the bound tables and history
#     tables (bound.sql) against the same bindings made on the fresh install;
#   - the history made on each old version is intact, and enforcement and
#     fire work after the upgrade.
# Leaves the current version installed, whatever happens. FSM_PG=18 runs it
# on PostgreSQL 18 (scripts/pg-env.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
repo=$(pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mapfile -t releases < <(grep -v '^#' sql/releases | grep -v '^[[:space:]]*$')
read -r last _ <<<"${releases[-1]}"
fail() { echo "FAIL: $*"; exit 1; }
if [ "$last" != "$version" ] && [ ! -f "sql/fsm--$last--$version.sql" ]; then
  fail "Cargo.toml says $version but sql/fsm--$last--$version.sql does not exist"
fi

install_current() { install_fsm >/dev/null 2>&1; }
trap 'install_current' EXIT

source scripts/throwaway-pg.sh
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
out=$(mktemp -d /tmp/fsm-upgrade.XXXXXX)
# throwaway-pg.sh set its own EXIT trap: keep it, and put the current
# version back whatever happens.
trap 'stop_throwaway_pg; rm -rf "$out"; install_current' EXIT
# describe <database> <file.sql>: its facts, in $out/<database>.<file>; fails loudly.
describe() { q -d "$1" -At -f "tests/upgrade/$2.sql" >"$out/$1.$2" || fail "tests/upgrade/$2.sql failed on $1"; }
# history <database>: every history row's columns that every release has.
history() {
  q -d "$1" -At -c "SELECT string_agg(h::text, E'\n' ORDER BY h.id) FROM (
    SELECT id, entity_key::text, event, from_state, to_state, payload, actor, db_user FROM orders_status_history
    UNION ALL SELECT id, entity_key::text, event, from_state, to_state, payload, actor, db_user FROM orders_payment_history
    UNION ALL SELECT id, entity_key::text, event, from_state, to_state, payload, actor, db_user FROM parcels_state_history) h"
}
db_of() { echo "from_${1//./_}"; }

# A library loads into a backend when a database first calls it: each
# release's databases are made while that release's fsm.so is installed, and
# not touched again until the current one is.
for line in "${releases[@]}"; do
  read -r released commit <<<"$line"
  echo "== build fsm $released from $commit"
  src=$repo/target/upgrade-src-$released-pg$FSM_PG
  log=$repo/target/upgrade-$released-pg$FSM_PG.log
  rm -rf "$src" && mkdir -p "$src"
  git archive "$commit" | tar -x -C "$src"
  (cd "$src" && CARGO_TARGET_DIR=$repo/target/upgrade-$released-pg$FSM_PG \
     cargo pgrx install --pg-config "$PG_CONFIG" $PG_FEATURES >"$log" 2>&1) \
    || { tail -40 "$log"; fail "could not build $released"; }
  db=$(db_of "$released")
  q -c "CREATE DATABASE $db"
  q -d "$db" -c "CREATE EXTENSION fsm VERSION '$released'" -f tests/upgrade/bindings.sql >/dev/null
  history "$db" >"$out/$db.history_before"
done
q -c 'CREATE DATABASE fresh_last'
q -d fresh_last -c "CREATE EXTENSION fsm VERSION '$last'"

echo "== install fsm $version"
install_current
if [ "$last" = "$version" ]; then
  q -c 'CREATE DATABASE fresh'
  q -d fresh -c 'CREATE EXTENSION fsm'
  describe fresh_last describe; describe fresh describe
  diff "$out/fresh_last.describe" "$out/fresh.describe" \
    || fail "the SQL changed since $last but Cargo.toml still says $version: bump it and add sql/fsm--$last--<new>.sql"
  echo "ok version $version is the released one and its SQL is unchanged"
  exit 0
fi
q -c 'CREATE DATABASE fresh'
q -d fresh -c 'CREATE EXTENSION fsm' -f tests/upgrade/bindings.sql >/dev/null
describe fresh describe; describe fresh bound
[ "$(wc -l <"$out/fresh.describe")" -gt 50 ] || fail "describe.sql printed too little to compare"
[ "$(wc -l <"$out/fresh.bound")" -gt 20 ] || fail "bound.sql printed too little to compare"

for line in "${releases[@]}"; do
  read -r released _ <<<"$line"
  db=$(db_of "$released")
  echo "== from $released: ALTER EXTENSION fsm UPDATE"
  # The scripts' NOTICEs (grants revoked from history tables) are expected.
  q -d "$db" -c 'ALTER EXTENSION fsm UPDATE' 2>&1 | grep -v '^NOTICE:  fsm ' || true
  [ "$(q -d "$db" -At -c "SELECT extversion FROM pg_extension WHERE extname = 'fsm'")" = "$version" ] \
    || fail "ALTER EXTENSION fsm UPDATE from $released did not reach $version"
  describe "$db" describe
  diff "$out/fresh.describe" "$out/$db.describe" \
    || fail "upgraded from $released, the schema differs from a fresh install of $version (lines: < fresh, > upgraded)"
  echo "ok from $released: the upgraded extension schema equals a fresh $version"
  describe "$db" bound
  diff "$out/fresh.bound" "$out/$db.bound" \
    || fail "upgraded from $released, the bindings differ from the same bindings made on $version (< fresh, > upgraded)"
  echo "ok from $released: bound tables, triggers and history tables equal those made on $version"

  history "$db" >"$out/$db.history_after"
  diff "$out/$db.history_before" "$out/$db.history_after" \
    || fail "the history made on $released changed during the upgrade"
  echo "ok from $released: the history made on it is intact"

  after=$(q -d "$db" -At -c "
    CREATE TEMP TABLE before AS SELECT id FROM orders_status_history ORDER BY id DESC LIMIT 1;
    UPDATE orders SET status = 'shipped' WHERE id = 3;
    SELECT fsm.fire('orders', 5, 'pay');
    INSERT INTO orders (id) VALUES (6);
    SELECT string_agg(coalesce(event, '') || ':' || to_state || ':' || coalesce(machine_version::text, '-'), ' ' ORDER BY id)
      FROM orders_status_history WHERE id > (SELECT id FROM before);")
  expected="paid
ship:shipped:1 pay:paid:1 :created:1"
  [ "$after" = "$expected" ] || fail "after the upgrade from $released: expected
$expected
got
$after"
  refused=$(q -d "$db" -At -c "UPDATE orders SET status = 'created' WHERE id = 3" 2>&1 || true)
  grep -q 'no event leads to "created"' <<<"$refused" || fail "an undeclared move was not refused after the upgrade from $released: $refused"
  echo "ok from $released: enforcement and fire work after the upgrade"
done
