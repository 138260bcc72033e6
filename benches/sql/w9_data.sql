-- W9 data: :entities entities of a machine with a self-loop, each with 2
-- to 7 history rows (4.25 on average) spread over about three weeks from
-- 2026-03-02, imported as facts (no trigger runs) into an attached table's
-- history, in time order. Entity e starts within the first 18 days and
-- moves every 10 minutes to 2 days; its path is one of four, cut after its
-- row count (only the full paths, and the short new -> cancelled one,
-- reach a final state), so the window of
-- W9 sees stays carried in, begun, ended and still held, and
-- self-transitions (touch) that neither end nor begin a stay.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SELECT bench.drop_variants('w9');
SELECT fsm.create_machine('bench_flow', '{
  "states": {"new": {"initial": true}, "active": {}, "paused": {},
             "done": {"final": true}, "cancelled": {"final": true}},
  "events": {"start":  {"from": "new", "to": "active"},
             "touch":  {"from": "active", "to": "active"},
             "pause":  {"from": "active", "to": "paused"},
             "resume": {"from": "paused", "to": "active"},
             "finish": {"from": "active", "to": "done"},
             "cancel": {"from": ["new", "active", "paused"], "to": "cancelled"}}
}', replace => true);
CREATE TABLE bench.w9_fsm (id bigint PRIMARY KEY, status text, note integer NOT NULL DEFAULT 0);
SELECT fsm.attach('bench.w9_fsm', 'status', 'bench_flow');

CREATE TEMP TABLE w9_steps AS
SELECT * FROM (
  SELECT e, i, (ARRAY[
            ARRAY['new', 'active', 'active', 'paused', 'active', 'active', 'done'],
            ARRAY['new', 'active', 'paused', 'active', 'paused', 'active', 'cancelled'],
            ARRAY['new', 'active', 'active', 'active', 'active', 'paused', 'cancelled'],
            ARRAY['new', 'cancelled', NULL, NULL, NULL, NULL, NULL]
         ])[1 + (e / 5) % 4][i] AS to_state,
         -- A start in the first 18 days, then gaps of 10 min .. 2 days.
         timestamptz '2026-03-02 00:00:00+00'
           + (abs(hashint8(e)) % (18 * 86400000)) * interval '1 ms'
           + sum(CASE WHEN i = 1 THEN 0 ELSE 600000 + abs(hashint8(e * 8 + i)) % (2 * 86400000 - 600000) END)
               OVER (PARTITION BY e ORDER BY i) * interval '1 ms' AS at
    FROM generate_series(1, :entities) e, generate_series(1, 3 + e % 5) i) s
 WHERE to_state IS NOT NULL;

CREATE TEMP TABLE w9_facts AS
SELECT e AS entity_key, at, to_state,
       lag(to_state) OVER (PARTITION BY e ORDER BY i) AS from_state,
       lead(i) OVER (PARTITION BY e ORDER BY i) IS NULL AS last
  FROM w9_steps;

SET session_replication_role = replica;
INSERT INTO bench.w9_fsm (id, status) SELECT entity_key, to_state FROM w9_facts WHERE last;
INSERT INTO bench.w9_fsm_status_history (id, entity_key, event, from_state, to_state)
-- fsm.uuid7(at) is the smallest id of its millisecond; the random tail of
-- a v4 id makes each one unique (rows of one entity are minutes apart, so
-- their order is their time order).
SELECT (left(fsm.uuid7(at)::text, 19) || substr(gen_random_uuid()::text, 20))::uuid, entity_key,
       CASE WHEN from_state IS NULL THEN NULL
            WHEN to_state = 'active' AND from_state = 'new' THEN 'start'
            WHEN to_state = 'active' AND from_state = 'active' THEN 'touch'
            WHEN to_state = 'active' THEN 'resume'
            WHEN to_state = 'paused' THEN 'pause'
            WHEN to_state = 'done' THEN 'finish'
            ELSE 'cancel' END,
       from_state, to_state
  FROM w9_facts ORDER BY at;
RESET session_replication_role;

-- 1,000 distinct keys for time_in_state, in a fixed random order.
CREATE TABLE bench.w9_keys (keys bigint[] NOT NULL);
INSERT INTO bench.w9_keys
SELECT ARRAY(SELECT e FROM generate_series(1, :entities) e ORDER BY hashint8(e::bigint * 7919) LIMIT 1000);
VACUUM ANALYZE bench.w9_fsm, bench.w9_fsm_status_history, bench.w9_keys;
SELECT count(*) AS history_rows FROM bench.w9_fsm_status_history;
