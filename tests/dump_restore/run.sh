#!/usr/bin/env bash
# Dump and restore: machines, bindings and history come back identical
# (pg_dump -Fc + pg_restore, and a plain SQL dump through psql), the restore
# appends no history row, and enforcement is on in the restored database.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
source scripts/throwaway-pg.sh
BIN=$PGBIN
out=$(mktemp -d /tmp/fsm-dump.XXXXXX)
chmod 777 "$out"
trap 'stop_throwaway_pg; rm -rf "$out"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

q -c 'CREATE DATABASE fsm_source'
q -d fsm_source -f tests/dump_restore/setup.sql >/dev/null
q -d fsm_source -At -f tests/dump_restore/compare.sql >"$out/source"
[ "$(grep -c '^history' "$out/source")" -ge 15 ] || fail "the source holds too little history to compare"

"$BIN/pg_dump" -Fc -d fsm_source -f "$out/source.dump"
"$BIN/pg_dump" -d fsm_source -f "$out/source.sql"
q -c 'CREATE DATABASE fsm_custom' -c 'CREATE DATABASE fsm_plain'
"$BIN/pg_restore" --exit-on-error -d fsm_custom "$out/source.dump"
q -d fsm_plain -f "$out/source.sql" >/dev/null

for db in fsm_custom fsm_plain; do
  q -d "$db" -At -f tests/dump_restore/compare.sql >"$out/$db"
  diff "$out/source" "$out/$db" || fail "$db differs from the source (< source, > restored)"
  echo "ok $db: machines, bindings, triggers, rows and history identical (no history row appended by the restore)"

  # Enforcement is on: refused, recorded, protected.
  refused=$(q -d "$db" -c "UPDATE orders SET status = 'created' WHERE id = 1" 2>&1 || true)
  grep -q 'no event leads to "created"' <<<"$refused" || fail "$db: an undeclared move was not refused: $refused"
  protected=$(q -d "$db" -c "UPDATE orders SET payment = 'settled' WHERE id = 4" 2>&1 || true)
  grep -q 'is protected' <<<"$protected" || fail "$db: a protected column was changed directly: $protected"
  moved=$(q -d "$db" -At -c "
    UPDATE orders SET status = 'returned' WHERE id = 1;
    SELECT fsm.fire('orders', 4, 'pay', '{\"amount\": 3}');
    INSERT INTO ledger (id) VALUES (160);
    UPDATE parcels SET state = 'paid' WHERE code = 'P-2';
    SELECT count(*) FROM orders_status_history;
    SELECT count(*) FROM ledger_status_history;
    SELECT count(*) FROM parcels_status_history;")
  before=$(q -d fsm_source -At -c "SELECT count(*) FROM orders_status_history; SELECT count(*) FROM ledger_status_history;
                                    SELECT count(*) FROM parcels_status_history;")
  expected="paid
$(( $(sed -n 1p <<<"$before") + 2 ))
$(( $(sed -n 2p <<<"$before") + 1 ))
$(( $(sed -n 3p <<<"$before") + 1 ))"
  [ "$moved" = "$expected" ] || fail "$db: expected one history row per move after the restore:
$expected
got
$moved"
  echo "ok $db: enforcement on (refused 55000, protected 42501, each move recorded once)"
done
