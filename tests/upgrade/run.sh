#!/usr/bin/env bash
# Upgrades. Builds the last released version (sql/releases) from its commit,
# installs it, makes machines and bindings with history (bindings.sql), then
# installs the current version and runs ALTER EXTENSION fsm UPDATE. Checks:
#   - the SQL is versioned: if Cargo.toml still says the released version,
#     a fresh install must equal the release's (else: bump the version and
#     write sql/fsm--<released>--<new>.sql); otherwise that script must exist;
#   - the upgraded extension's schema equals a fresh install's (describe.sql),
#     and so do the bound tables and history tables (bound.sql) against the
#     same bindings made on the fresh install;
#   - the history made on the old version is intact, and enforcement and
#     fire work after the upgrade.
# Leaves the current version installed, whatever happens. FSM_PG=18 runs it
# on PostgreSQL 18 (scripts/pg-env.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
repo=$(pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
read -r released commit < <(grep -v '^#' sql/releases | tail -n 1)
fail() { echo "FAIL: $*"; exit 1; }
if [ "$released" != "$version" ] && [ ! -f "sql/fsm--$released--$version.sql" ]; then
  fail "Cargo.toml says $version but sql/fsm--$released--$version.sql does not exist"
fi

install_current() { install_fsm >/dev/null 2>&1; }
trap 'install_current' EXIT

echo "== build fsm $released from $commit"
old_src=$repo/target/upgrade-src-$released-pg$FSM_PG
rm -rf "$old_src" && mkdir -p "$old_src"
git archive "$commit" | tar -x -C "$old_src"
old_log=$repo/target/upgrade-$released-pg$FSM_PG.log
(cd "$old_src" && CARGO_TARGET_DIR=$repo/target/upgrade-$released-pg$FSM_PG \
   cargo pgrx install --pg-config "$PG_CONFIG" $PG_FEATURES >"$old_log" 2>&1) \
  || { tail -40 "$old_log"; fail "could not build $released"; }

source scripts/throwaway-pg.sh
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
out=$(mktemp -d /tmp/fsm-upgrade.XXXXXX)
# throwaway-pg.sh set its own EXIT trap: keep it, and put the current
# version back whatever happens.
trap 'stop_throwaway_pg; rm -rf "$out"; install_current' EXIT
# describe <database> <file.sql>: its facts, in $out/<database>.<file>; fails loudly.
describe() { q -d "$1" -At -f "tests/upgrade/$2.sql" >"$out/$1.$2" || fail "tests/upgrade/$2.sql failed on $1"; }
q -c 'CREATE DATABASE upgraded' -c 'CREATE DATABASE fresh_old'
q -d upgraded -c "CREATE EXTENSION fsm VERSION '$released'" -f tests/upgrade/bindings.sql >/dev/null
q -d fresh_old -c "CREATE EXTENSION fsm VERSION '$released'"
history_before=$(q -d upgraded -At -c "SELECT string_agg(h::text, E'\n' ORDER BY h.id) FROM (
  SELECT id, entity_key::text, event, from_state, to_state, payload, actor, db_user FROM orders_status_history
  UNION ALL SELECT id, entity_key::text, event, from_state, to_state, payload, actor, db_user FROM orders_payment_history
  UNION ALL SELECT id, entity_key::text, event, from_state, to_state, payload, actor, db_user FROM parcels_state_history) h")

echo "== install fsm $version, ALTER EXTENSION fsm UPDATE"
install_current
if [ "$released" = "$version" ]; then
  q -c 'CREATE DATABASE fresh'
  q -d fresh -c 'CREATE EXTENSION fsm'
  describe fresh_old describe; describe fresh describe
  diff "$out/fresh_old.describe" "$out/fresh.describe" \
    || fail "the SQL changed since $released ($commit) but Cargo.toml still says $version: bump it and add sql/fsm--$released--<new>.sql"
  echo "ok version $version is the released one and its SQL is unchanged"
  exit 0
fi
q -d upgraded -c 'ALTER EXTENSION fsm UPDATE' 2>&1 | grep -v '^NOTICE:  fsm 0.2.0: revoked' || true
[ "$(q -d upgraded -At -c "SELECT extversion FROM pg_extension WHERE extname = 'fsm'")" = "$version" ] \
  || fail "ALTER EXTENSION fsm UPDATE did not reach $version"
q -c 'CREATE DATABASE fresh'
q -d fresh -c 'CREATE EXTENSION fsm' -f tests/upgrade/bindings.sql >/dev/null

describe fresh describe; describe upgraded describe
[ "$(wc -l <"$out/fresh.describe")" -gt 50 ] || fail "describe.sql printed too little to compare"
diff "$out/fresh.describe" "$out/upgraded.describe" \
  || fail "the upgraded schema differs from a fresh install of $version (lines: < fresh, > upgraded)"
echo "ok the upgraded extension schema equals a fresh $version"
describe fresh bound; describe upgraded bound
[ "$(wc -l <"$out/fresh.bound")" -gt 20 ] || fail "bound.sql printed too little to compare"
diff "$out/fresh.bound" "$out/upgraded.bound" \
  || fail "the upgraded bindings differ from the same bindings made on $version (< fresh, > upgraded)"
echo "ok bound tables, triggers and history tables equal those made on $version"

history_after=$(q -d upgraded -At -c "SELECT string_agg(h::text, E'\n' ORDER BY h.id) FROM (
  SELECT id, entity_key::text, event, from_state, to_state, payload, actor, db_user FROM orders_status_history
  UNION ALL SELECT id, entity_key::text, event, from_state, to_state, payload, actor, db_user FROM orders_payment_history
  UNION ALL SELECT id, entity_key::text, event, from_state, to_state, payload, actor, db_user FROM parcels_state_history) h")
[ "$history_before" = "$history_after" ] || fail "the history made on $released changed during the upgrade"
echo "ok the history made on $released is intact"

after=$(q -d upgraded -At -c "
  UPDATE orders SET status = 'shipped' WHERE id = 3;
  SELECT fsm.fire('orders', 5, 'pay');
  INSERT INTO orders (id) VALUES (6);
  SELECT string_agg(coalesce(event, '') || ':' || to_state || ':' || coalesce(machine_version::text, '-'), ' ' ORDER BY id)
    FROM orders_status_history WHERE entity_key IN (3, 5, 6);")
expected="paid
:created:- :created:- pay:paid:- ship:shipped:1 pay:paid:1 :created:1"
[ "$after" = "$expected" ] || fail "after the upgrade: expected
$expected
got
$after"
refused=$(q -d upgraded -At -c "UPDATE orders SET status = 'created' WHERE id = 3" 2>&1 || true)
grep -q 'no event leads to "created"' <<<"$refused" || fail "an undeclared move was not refused after the upgrade: $refused"
echo "ok enforcement and fire work after the upgrade"
