-- History rows, the read functions, and UUIDv7 ids.
\set SHOW_CONTEXT never
SELECT fsm.create_machine('ticket', '{
  "states": {"open": {"initial": true}, "working": {}, "done": {"final": true}},
  "events": {"start": {"from": "open", "to": "working"},
             "pause": {"from": "working", "to": "open"},
             "finish": {"from": "working", "to": "done"}}
}');
CREATE TABLE tickets (code text PRIMARY KEY, state text);
SELECT fsm.attach('tickets', 'state', 'ticket') IS NOT NULL AS attached;
CREATE ROLE helpdesk NOLOGIN;
GRANT SELECT, INSERT, UPDATE ON tickets TO helpdesk;

SET fsm.actor = 'api:42';
INSERT INTO tickets (code) VALUES ('T-1'), ('T-2'), ('T-3');
UPDATE tickets SET state = 'working' WHERE code IN ('T-1', 'T-2');
-- A string literal key needs a type: anyelement cannot resolve "unknown".
SELECT fsm.fire('tickets', 'T-1'::text, 'pause', '{"why": "lunch"}');
-- The caller needs no grant on the history table: it is written as the owner.
SET ROLE helpdesk;
SELECT fsm.fire('tickets', 'T-1'::text, 'start');
UPDATE tickets SET state = 'done' WHERE code = 'T-1';
RESET ROLE;
RESET fsm.actor;
UPDATE tickets SET state = 'done' WHERE code = 'T-2';

-- One entity's history, newest first, with who did it.
SELECT event, from_state, to_state, payload, actor, db_user FROM fsm.history('tickets', 'T-1'::text);
-- In id order it replays as a chain ending in the column's value.
SELECT string_agg(coalesce(from_state, '∅') || '→' || to_state, ' ' ORDER BY id) AS chain
  FROM tickets_state_history WHERE entity_key = 'T-1';
-- lim, since and until (the moment is the time inside the id).
SELECT count(*) FROM fsm.history('tickets', 'T-1'::text, lim => 2);
SELECT count(*) FROM fsm.history('tickets', 'T-1'::text, since => now() - interval '1 hour');
SELECT count(*) FROM fsm.history('tickets', 'T-1'::text, until => now() - interval '1 hour');
SELECT bool_and(at = fsm.uuid7_time(id)) AS at_is_id_time FROM fsm.history('tickets', 'T-1'::text);
SELECT count(*) FROM fsm.history('tickets', 'nope'::text);

-- Current state of many keys at once; missing keys are left out.
SELECT entity_key, state, last_event, since IS NOT NULL AS has_since
  FROM fsm.current_states('tickets', ARRAY['T-1', 'T-2', 'T-3', 'missing']);
SELECT bool_and(transition_id = (SELECT id FROM tickets_state_history h WHERE h.entity_key = c.entity_key ORDER BY id DESC LIMIT 1)) AS last_id
  FROM fsm.current_states('tickets', ARRAY['T-1', 'T-2', 'T-3']) c;

-- Read functions on a table with no machine: 42704.
SELECT * FROM fsm.history('pg_class', 1);
\echo :LAST_ERROR_SQLSTATE

-- UUIDv7: version 7, RFC variant, strictly increasing in a session.
SELECT substr(fsm.uuid7()::text, 15, 1) AS version, substr(fsm.uuid7()::text, 20, 1) IN ('8', '9', 'a', 'b') AS rfc_variant;
SELECT bool_and(a < b) AS increasing
  FROM (SELECT id AS a, lead(id) OVER (ORDER BY n) AS b
          FROM (SELECT n, fsm.uuid7() AS id FROM generate_series(1, 10000) n) s) t
 WHERE b IS NOT NULL;
-- uuid7(at) is the smallest id of that millisecond; uuid7_time reads it back.
SELECT fsm.uuid7('2024-05-06 07:08:09.123456+00');
SELECT fsm.uuid7_time(fsm.uuid7('2024-05-06 07:08:09.123456+00')) AT TIME ZONE 'UTC';
SELECT fsm.uuid7_time(fsm.uuid7()) BETWEEN now() - interval '1 minute' AND clock_timestamp() AS now_ish;
SELECT fsm.uuid7(now()) <= fsm.uuid7() AS since_bound_works;
