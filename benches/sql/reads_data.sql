-- W4 and W5 data: :entities orders, each with 4 to 6 history rows (5 on
-- average), the same facts in two worlds: PL/pgSQL-style tables (history
-- with a timestamp `at` and an index on (entity_key, at)) and fsm's
-- (uuid7 ids carry the time). Rows are loaded in time order, so one
-- entity's rows are spread over the heap as they would be in real use.
-- Entity e starts at 2026-01-01 + e * 2.5 s and moves every 20 minutes.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SELECT bench.drop_variants('w4');
SELECT bench.make_variants('w4', ARRAY['pl', 'fsm']);

-- Loading facts, not transitions: no trigger may rewrite them.
SET session_replication_role = replica;
CREATE TEMP TABLE w4_facts AS
SELECT e AS entity_key, i AS step,
       (ARRAY[NULL, 'pay', 'hold', 'resume', 'ship', 'deliver'])[i] AS event,
       (ARRAY[NULL, 'created', 'paid', 'on_hold', 'paid', 'shipped'])[i] AS from_state,
       (ARRAY['created', 'paid', 'on_hold', 'paid', 'shipped', 'delivered'])[i] AS to_state,
       timestamptz '2026-01-01 00:00:00+00' + e * interval '2.5 s' + (i - 1) * interval '20 min' AS at,
       i = 4 + e % 3 AS last
  FROM generate_series(1, :entities) e, generate_series(1, 4 + e % 3) i;

INSERT INTO bench.w4_pl (id, status) SELECT entity_key, to_state FROM w4_facts WHERE last;
INSERT INTO bench.w4_fsm (id, status) SELECT entity_key, to_state FROM w4_facts WHERE last;
INSERT INTO bench.w4_pl_history (id, entity_key, event, from_state, to_state, at)
SELECT gen_random_uuid(), entity_key, event, from_state, to_state, at FROM w4_facts ORDER BY at;
INSERT INTO bench.w4_fsm_status_history (id, entity_key, event, from_state, to_state)
-- fsm.uuid7(at) is the smallest id of its millisecond (a range bound);
-- the random tail of a v4 id makes each one unique, as fsm's own ids are.
SELECT (left(fsm.uuid7(at)::text, 19) || substr(gen_random_uuid()::text, 20))::uuid,
       entity_key, event, from_state, to_state
  FROM w4_facts ORDER BY at;
RESET session_replication_role;

-- 20 sets of 10,000 random keys; each W4 transaction reads one.
CREATE TABLE bench.w4_keys (set integer PRIMARY KEY, keys bigint[] NOT NULL);
INSERT INTO bench.w4_keys
SELECT s, ARRAY(SELECT 1 + floor(random() * :entities)::bigint FROM generate_series(1, 10000) WHERE s > 0)
  FROM generate_series(1, 20) s;
VACUUM ANALYZE bench.w4_pl, bench.w4_fsm, bench.w4_pl_history, bench.w4_fsm_status_history, bench.w4_keys;
SELECT count(*) AS history_rows FROM bench.w4_fsm_status_history;
