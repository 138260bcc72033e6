#!/usr/bin/env bash
# docs/operations.md, run and checked. Starts a throwaway cluster (with
# pg_cron preloaded on PostgreSQL 15 when Debian's postgresql-15-cron is
# installed; wal_level=logical), runs every ```sql block of the page in
# order in one psql session (ON_ERROR_STOP; blocks marked `<!-- ops: cron -->`
# are skipped where there is no pg_cron), then checks exactly what they did:
#   - the example's data, and the monitoring queries' answers on it;
#   - the history partitioned by id range: the binding took the partitioned
#     table back, partitions contiguous month by month from the cutover,
#     each with fsm's append-only triggers and the table owner's ownership,
#     the old history adopted whole (no index built again), a new transition
#     routed to the partition that covers its moment, UPDATE/DELETE/TRUNCATE
#     refused on the table and on every partition, idempotency retries;
#   - idempotency keys unique without a unique index: pgbench, 4 clients
#     firing 20 shared keys on 300 entities, each key recorded exactly once;
#   - ownership: ALTER TABLE … OWNER TO moves the partitioned history and
#     its partitions; the new owner adds months without a superuser;
#   - retention: history_drop_before on a table with past monthly partitions
#     drops exactly those that ended before the limit;
#   - pg_dump -Fc + pg_restore bring the partitioned history back identical,
#     with enforcement on;
#   - a logical replica (a second database without fsm, a plain
#     orders_status_history) receives the whole history;
#   - the pg_cron jobs are scheduled, and ALTER EXTENSION fsm UPDATE runs.
# Needs fsm installed. FSM_PG=18 runs it on PostgreSQL 18 (no pg_cron).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
doc=docs/operations.md
cron=no
if [ "$FSM_PG" = 15 ] && [ -f "$("$PG_CONFIG" --pkglibdir)/pg_cron.so" ]; then cron=yes; fi
opts="-c fsync=off -c wal_level=logical"
if [ $cron = yes ]; then
  opts="$opts -c shared_preload_libraries=pg_cron -c cron.database_name=fsm_ops -c cron.use_background_workers=on"
fi
export FSM_PG_OPTS=$opts
source scripts/throwaway-pg.sh
out=$(mktemp -d /tmp/fsm-ops.XXXXXX)
chmod 777 "$out"
trap 'stop_throwaway_pg; rm -rf "$out"' EXIT
export PGDATABASE=fsm_ops
fail() { echo "FAIL: $*" >&2; exit 1; }
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
# check <what> <expected> [psql arguments]: the query's unaligned output must be exactly <expected>.
check() {
  local what=$1 expected=$2 got
  shift 2
  got=$(q -At "$@" 2>&1) || fail "$what: $got"
  [ "$got" = "$expected" ] || fail "$what: expected
$expected
got
$got"
  echo "ok $what"
}

# The page's SQL blocks, in order; a block's tag is the `<!-- ops: tag -->`
# line right above it.
mkdir "$out/blocks"
awk -v dir="$out/blocks" '
  inblock && /^```$/ { inblock = 0; close(file); prev = ""; next }
  inblock { print > file; next }
  /^```sql$/ {
    n++; file = sprintf("%s/%02d.sql", dir, n); tag = "-"
    if (prev ~ /^<!-- ops: [a-z-]+ -->$/) { split(prev, word, " "); tag = word[3] }
    printf "%02d %s\n", n, tag > (dir "/index"); inblock = 1; next
  }
  { prev = $0 }
' "$doc"
ran=0
: >"$out/doc.sql"
while read -r n tag; do
  if [ "$tag" = cron ] && [ $cron = no ]; then
    echo "skip block $n (pg_cron): PostgreSQL $FSM_PG has no pg_cron here"
    continue
  fi
  printf '\\echo == block %s (%s)\n\\i %s\n' "$n" "$tag" "$out/blocks/$n.sql" >>"$out/doc.sql"
  ran=$((ran + 1))
done <"$out/blocks/index"
[ "$(sed -n 1p "$out/blocks/index")" = "01 setup" ] || fail "the page's first SQL block is not the one marked setup"
found=$(wc -l <"$out/blocks/index")
[ "$found" -ge 10 ] || fail "only $found SQL blocks found in $doc"
q -d postgres -c 'CREATE DATABASE fsm_ops'
q -f "$out/doc.sql" >"$out/doc.out" 2>&1 || { tail -n 30 "$out/doc.out"; fail "a SQL block of $doc failed (above)"; }
echo "ok ran $ran of the $found SQL blocks of $doc"

# --- the example's data and the monitoring queries ---------------------------
check "history rows of the example" 21 -c "SELECT count(*) FROM orders_status_history"
check "entities per state" "cancelled|1
created|3
delivered|1
paid|3
shipped|2" -c "SELECT status, count(*) AS entities FROM orders GROUP BY status ORDER BY status"
check "state_stats over the week" 'cancelled|1|1|{}
created|10|3|{"paid": 6, "cancelled": 1}
delivered|1|1|{}
lost|0|0|{}
paid|6|3|{"shipped": 3}
shipped|3|2|{"delivered": 1}' -c "SELECT state, entered, still_in, next
  FROM fsm.state_stats('orders', since => now() - interval '7 days') ORDER BY state"
check "transitions of the last day, per event (changes)" "-|10
cancel|1
deliver|1
pay|6
ship|3" -c "SELECT coalesce(event, '-'), sum(transitions) FROM (
  SELECT date_trunc('hour', at) AS hour, event, count(*) AS transitions
    FROM fsm.changes('orders', since => now() - interval '24 hours') GROUP BY 1, 2) q GROUP BY 1 ORDER BY 1"
check "transitions of the last day (history table, id window)" 21 -c "SELECT sum(transitions) FROM (
  SELECT date_trunc('hour', fsm.uuid7_time(id)) AS hour, count(*) AS transitions
    FROM orders_status_history WHERE id >= fsm.uuid7(now() - interval '24 hours') GROUP BY 1) q"
# Every entity was made within the week: its times in states add up to
# exactly now minus the moment of its first history row.
check "time_in_state: entities per state, stays add up" "cancelled|1
created|10
delivered|1
paid|6
shipped|3
t" -f - <<'SQL'
SELECT state, count(DISTINCT entity_key) AS entities
  FROM fsm.time_in_state('orders', ARRAY(SELECT id FROM orders), now() - interval '7 days', now())
 GROUP BY state ORDER BY state;
SELECT bool_and(t.total = now() - fsm.uuid7_time(h.first)) FROM
  (SELECT entity_key, sum(duration) AS total
     FROM fsm.time_in_state('orders', ARRAY(SELECT id FROM orders), now() - interval '7 days', now())
    GROUP BY 1) t
  JOIN (SELECT DISTINCT ON (entity_key) entity_key, id AS first FROM orders_status_history
         ORDER BY entity_key, id) h USING (entity_key);
SQL
check "no entity stuck in paid" 0 -c "SELECT count(*) FROM fsm.current_states('orders', ARRAY(SELECT id FROM orders WHERE status = 'paid'))
  WHERE since < now() - interval '2 days'"
check "timers: two pending, due 14 days after shipping, none late" "2|t
0" -f - <<'SQL'
SELECT count(*), bool_and(t.due = fsm.uuid7_time(h.id) + interval '14 days')
  FROM fsm.timers t JOIN orders_status_history h ON h.entity_key::text = t.entity_key AND h.event = 'ship';
SELECT count(*) FROM fsm.timers WHERE due < now() - interval '5 minutes';
SQL
check "partitions cover more than a month ahead" f -c "SELECT max(ends) < now() + interval '1 month' FROM history_partitions('orders_status_history')"

# --- the partitioned history -------------------------------------------------
check "the binding took the partitioned table back" "orders_status_history|p" -c "
  SELECT b.history, c.relkind FROM fsm.bindings b JOIN pg_class c ON c.oid = b.history WHERE b.tbl = 'orders'::regclass"
check "partitions: the old history up to the cutover, then whole UTC months, contiguous, 3 months ahead" "t|t|t|t|t|t" -f - <<'SQL'
WITH p AS (SELECT partition, starts, ends, lag(ends) OVER (ORDER BY ends) AS previous_end,
                  row_number() OVER (ORDER BY ends) AS n
             FROM history_partitions('orders_status_history'))
SELECT bool_and(n > 1 OR (partition = 'orders_status_history_old'::regclass AND starts IS NULL
                          AND ends = date_trunc('month', ends AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                          AND ends > now() + interval '1 day' AND ends <= now() + interval '2 months 1 day')),
       bool_and(n = 1 OR starts = previous_end),
       bool_and(ends = date_trunc('month', ends AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
       bool_and(n = 1 OR partition::text = 'orders_status_history' || to_char(starts AT TIME ZONE 'UTC', '_YYYY_MM')),
       max(ends) >= now() + interval '3 months',
       max(ends) - interval '1 month' < now() + interval '3 months'
  FROM p;
SQL
check "every partition: fsm's two triggers, the table's owner, no grant to another role" "t" -c "
  SELECT bool_and((SELECT string_agg(g.tgname, ',' ORDER BY g.tgname) FROM pg_trigger g
                    WHERE g.tgrelid = c.oid AND NOT g.tgisinternal) = 'fsm_append_only,fsm_append_only_truncate'
                  AND c.relowner = (SELECT relowner FROM pg_class WHERE oid = 'orders'::regclass)
                  AND NOT EXISTS (SELECT FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                                   WHERE a.grantee <> c.relowner))
    FROM pg_partition_tree('orders_status_history') p JOIN pg_class c ON c.oid = p.relid"
check "the old history adopted whole: its 4 indexes, each partitioned index served by one of them" "4|3" -c "
  SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = x.indexrelid))
    FROM pg_index x WHERE x.indrelid = 'orders_status_history_old'::regclass"
check "the example's history is in the old partition" "orders_status_history_old|21" -c "
  SELECT tableoid::regclass, count(*) FROM orders_status_history GROUP BY 1"
check "a new transition lands in the partition that covers its moment" "paid
t" -f - <<'SQL'
SELECT fsm.fire('orders', 8, 'pay', '{"amount": 3}');
SELECT h.tableoid = p.partition FROM orders_status_history h
  JOIN history_partitions('orders_status_history') p
    ON fsm.uuid7_time(h.id) >= coalesce(p.starts, '-infinity') AND fsm.uuid7_time(h.id) < p.ends
 WHERE h.id = (SELECT id FROM fsm.history('orders', 8, lim => 1));
SQL
check "UPDATE, DELETE and TRUNCATE refused (42501) on the history and on every partition" "t" -f - <<'SQL'
DO $$
DECLARE r regclass; s text; refused int := 0; tried int := 0;
BEGIN
  FOR r IN SELECT relid FROM pg_partition_tree('orders_status_history') LOOP
    FOREACH s IN ARRAY ARRAY['UPDATE %s SET actor = NULL', 'DELETE FROM %s', 'TRUNCATE %s'] LOOP
      tried := tried + 1;
      BEGIN
        EXECUTE format(s, r);
      EXCEPTION WHEN insufficient_privilege THEN refused := refused + 1;
      END;
    END LOOP;
  END LOOP;
  CREATE TEMP TABLE refusals AS SELECT refused, tried;
END $$;
SELECT refused = tried AND tried >= 15 FROM refusals;
SQL
check "an idempotency retry across the change: the recorded state, no new row" "paid
22" -f - <<'SQL'
SELECT fsm.fire('orders', 1, 'pay', '{"amount": 10}', idempotency_key => 'pay-1');
SELECT count(*) FROM orders_status_history;
SQL

# --- a logical replica: a database without fsm, plain tables -------------------
q -d postgres -c 'CREATE DATABASE fsm_ops_replica'
q -d fsm_ops_replica <<'SQL'
CREATE TABLE orders (id bigint PRIMARY KEY, customer text, status text);
CREATE TABLE orders_status_history (id uuid PRIMARY KEY, entity_key bigint NOT NULL, event text, from_state text,
  to_state text NOT NULL, payload jsonb, actor text, db_user text, machine_version integer, idempotency_key text);
SQL
# A subscription to the same cluster cannot make its slot itself.
q -c "SELECT pg_create_logical_replication_slot('ops_replica', 'pgoutput')" >/dev/null
q -d fsm_ops_replica -c "CREATE SUBSCRIPTION ops_replica CONNECTION 'host=$PGHOST port=$PGPORT user=$PGUSER dbname=fsm_ops'
  PUBLICATION orders_history WITH (create_slot = false, slot_name = 'ops_replica')"

# --- idempotency keys under concurrency, without a unique index ---------------
q <<'SQL'
INSERT INTO orders (id, customer) SELECT g, 'bench' FROM generate_series(101, 400) g;
-- Each order is paid with the key its number gives; a key another order
-- recorded first is refused (22023), which counts as an answer here.
CREATE FUNCTION ops_pay(order_id bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN fsm.fire('orders', order_id, 'pay', '{"amount": 1}', idempotency_key => 'shared-' || order_id % 20);
EXCEPTION WHEN invalid_parameter_value THEN
  RETURN 'refused';
END $$;
SQL
cat >"$out/pay.pgbench" <<'EOF'
\set id random(101, 400)
SELECT ops_pay(:id);
EOF
pgbench -n -c 4 -j 2 -t 150 -f "$out/pay.pgbench" >"$out/pgbench.out" 2>&1 \
  || { cat "$out/pgbench.out"; fail "pgbench: a fire failed otherwise than with 22023"; }
check "20 shared keys fired from 4 connections: each recorded once, by one paid order" "20|20|20|20" -c "
  SELECT count(*), count(DISTINCT idempotency_key),
         (SELECT count(*) FROM orders WHERE id BETWEEN 101 AND 400 AND status = 'paid'),
         (SELECT count(*) FROM orders_status_history WHERE entity_key BETWEEN 101 AND 400 AND event = 'pay')
    FROM orders_status_history WHERE idempotency_key LIKE 'shared-%'"

# --- ownership ---------------------------------------------------------------
check "ALTER TABLE orders OWNER TO moves the partitioned history and its partitions" "shop_owner
shop_owner" -f - <<'SQL'
CREATE ROLE shop_owner;
GRANT CREATE ON SCHEMA public TO shop_owner;
ALTER TABLE orders OWNER TO shop_owner;
SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'orders_status_history'::regclass;
SELECT string_agg(DISTINCT pg_get_userbyid(c.relowner), ',') FROM history_partitions('orders_status_history') p
  JOIN pg_class c ON c.oid = p.partition;
SQL
check "history_add_months (superuser) finds the partitions the new owner's already" "0
shop_owner" -f - <<'SQL'
SELECT history_add_months('orders_status_history', 3);
SELECT string_agg(DISTINCT pg_get_userbyid(c.relowner), ',') FROM history_partitions('orders_status_history') p
  JOIN pg_class c ON c.oid = p.partition;
SQL
check "the new owner adds months and fires without a superuser" "2
shop_owner|t
shipped" -f - <<'SQL'
SET ROLE shop_owner;
SELECT history_add_months('orders_status_history', 5);
SELECT string_agg(DISTINCT pg_get_userbyid(c.relowner), ','),
       bool_and((SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = p.partition AND g.tgfoid = 'fsm.refuse_history_change()'::regprocedure) = 2)
  FROM history_partitions('orders_status_history') p JOIN pg_class c ON c.oid = p.partition;
SELECT fsm.fire('orders', 4, 'ship');
SQL

# --- retention ---------------------------------------------------------------
# Months in the past cannot be made with real transitions: a table of the
# same shape, a first partition up to six months ago, months from there,
# and one row for each month from now back to eight months ago.
check "history_drop_before drops exactly the partitions that ended 3 months ago or earlier" "9
0
4
4|0,1,2,3" -f - <<'SQL'
CREATE TABLE ops_archive (id uuid PRIMARY KEY, note text) PARTITION BY RANGE (id);
SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '6 months') AT TIME ZONE 'UTC' AS six_ago \gset
CREATE TABLE ops_archive_before PARTITION OF ops_archive FOR VALUES FROM (MINVALUE) TO (fsm.uuid7(:'six_ago'));
SELECT history_add_months('ops_archive', 2);
SELECT history_add_months('ops_archive', 2);
INSERT INTO ops_archive SELECT fsm.uuid7(now() - make_interval(months => k)), k::text FROM generate_series(0, 8) k;
SELECT history_drop_before('ops_archive', interval '3 months');
SELECT count(*), string_agg(note, ',' ORDER BY note) FROM ops_archive;
SQL

# --- dump and restore ----------------------------------------------------------
pg_dump -Fc -f "$out/ops.dump"
# pg_cron can only be created in cron.database_name: leave it out.
pg_restore -l "$out/ops.dump" | grep -v -E 'EXTENSION - pg_cron|cron job|COMMENT - EXTENSION pg_cron| cron ' >"$out/ops.list"
q -d postgres -c 'CREATE DATABASE fsm_ops_restored'
pg_restore --exit-on-error -L "$out/ops.list" -d fsm_ops_restored "$out/ops.dump"
cat >"$out/compare.sql" <<'SQL'
SET TimeZone = 'UTC';
SELECT md5(string_agg(h::text, E'\n' ORDER BY h.id)) FROM orders_status_history h;
SELECT string_agg(partition || ':' || n, ',' ORDER BY partition) FROM (
  SELECT tableoid::regclass::text AS partition, count(*) AS n FROM orders_status_history GROUP BY 1) x;
SELECT string_agg(concat_ws(' ', partition, starts, ends, pg_get_userbyid(c.relowner)), ',' ORDER BY ends)
  FROM history_partitions('orders_status_history') p JOIN pg_class c ON c.oid = p.partition;
SELECT count(*) FROM pg_trigger g JOIN pg_partition_tree('orders_status_history') p ON p.relid = g.tgrelid
 WHERE g.tgfoid = 'fsm.refuse_history_change()'::regprocedure;
SELECT string_agg(b::text, ',') FROM fsm.bindings b;
SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM orders o;
SQL
q -At -f "$out/compare.sql" >"$out/source.compare" 2>&1 || { cat "$out/source.compare"; fail "compare.sql on the source"; }
q -At -d fsm_ops_restored -f "$out/compare.sql" >"$out/restored.compare" 2>&1 || true
diff "$out/source.compare" "$out/restored.compare" || fail "the restored database differs (< source, > restored)"
[ "$(wc -l <"$out/source.compare")" -eq 6 ] || fail "the comparison printed $(wc -l <"$out/source.compare") lines, not 6"
echo "ok pg_dump -Fc + pg_restore: history rows, partitions (bounds, owners, triggers), binding and orders identical"
refused=$(q -d fsm_ops_restored -c "UPDATE orders SET status = 'created' WHERE id = 2" 2>&1 || true)
grep -q 'no event leads to "created"' <<<"$refused" || fail "restored: an undeclared move was not refused: $refused"
check "restored: enforcement on, a move recorded once, in the partition of its moment" "delivered
1
t" -d fsm_ops_restored -f - <<'SQL'
SELECT fsm.fire('orders', 2, 'deliver');
SELECT count(*) FROM orders_status_history WHERE entity_key = 2 AND event = 'deliver';
SELECT h.tableoid = p.partition FROM orders_status_history h
  JOIN history_partitions('orders_status_history') p
    ON fsm.uuid7_time(h.id) >= coalesce(p.starts, '-infinity') AND fsm.uuid7_time(h.id) < p.ends
 WHERE h.entity_key = 2 AND h.event = 'deliver';
SQL

# --- the logical replica caught up, and follows ------------------------------
replicated="SELECT md5(string_agg(h::text, E'\\n' ORDER BY h.id)), count(*),
                   (SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM orders o)
              FROM orders_status_history h"
caught_up() {
  local want got
  want=$(q -At -c "$replicated")
  for _ in $(seq 1 120); do
    got=$(q -At -d fsm_ops_replica -c "$replicated")
    [ "$got" = "$want" ] && { echo "$got"; return 0; }
    sleep 0.5
  done
  fail "after 60 s, the logical replica has (history md5, rows, orders md5) $got, the source $want"
}
rows=$(caught_up | cut -d'|' -f2)
q -c "SELECT fsm.fire('orders', 5, 'ship')" >/dev/null
after=$(caught_up | cut -d'|' -f2)
[ "$after" -eq $((rows + 1)) ] || fail "the replica got $after history rows after one more transition, not $((rows + 1))"
echo "ok logical replica without fsm: orders and the whole history ($rows rows), then the next transition"

# --- pg_cron and the update ------------------------------------------------------
if [ $cron = yes ]; then
  check "pg_cron jobs scheduled" "fsm-tick|SELECT fsm.tick()
orders-history-months|SELECT history_add_months('orders_status_history', 3)
orders-history-retention|SELECT history_drop_before('orders_status_history', interval '13 months')" \
    -c "SELECT jobname, command FROM cron.job ORDER BY jobid"
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
check "ALTER EXTENSION fsm UPDATE ran; the version is Cargo.toml's" "$version" -c "SELECT extversion FROM pg_extension WHERE extname = 'fsm'"
echo "ops: ok"
