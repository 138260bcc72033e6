-- Reading: every stored version of a machine, what changed on a whole table
-- (fsm.changes), the states keys were in at a past moment (fsm.states_at),
-- and `col` on tables that carry several machines.
\set SHOW_CONTEXT never

-- Every version of a machine is kept; history rows name the version they
-- were checked against.
SELECT fsm.create_machine('beacon', '{
  "states": {"off": {"initial": true}, "on": {}},
  "events": {"switch_on": {"from": "off", "to": "on"}, "switch_off": {"from": "on", "to": "off"}}}');
CREATE TABLE beacons (id int PRIMARY KEY, owner_name text, state text);
SELECT fsm.attach('beacons', 'state', 'beacon') IS NOT NULL AS attached;
INSERT INTO beacons (id, owner_name) VALUES (1, 'reader'), (2, 'someone_else'), (3, 'reader');
UPDATE beacons SET state = 'on' WHERE id = 1;
SELECT fsm.create_machine('beacon', '{
  "states": {"off": {"initial": true}, "on": {}, "broken": {"final": true}},
  "events": {"switch_on": {"from": "off", "to": "on"}, "switch_off": {"from": "on", "to": "off"},
             "break": {"from": "*", "to": "broken"}}}', replace => true);
SELECT fsm.fire('beacons', 2, 'break');
SELECT machine, version FROM fsm.machine_versions WHERE machine = 'beacon' ORDER BY version;
SELECT fsm.machine_definition('beacon', 1) -> 'states' ? 'broken' AS v1_has_broken,
       fsm.machine_definition('beacon', 2) -> 'states' ? 'broken' AS v2_has_broken,
       fsm.machine_definition('beacon') = fsm.machine_definition('beacon', 2) AS latest_is_v2;
SELECT entity_key, coalesce(event, '∅') AS event, to_state, machine_version
  FROM beacons_state_history ORDER BY id;
SELECT fsm.machine_definition('beacon', 3);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.machine_definition('no_such_machine', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.machine_definition(NULL, 1);
\echo :LAST_ERROR_SQLSTATE

-- changes: the whole table's history, newest first, keys as text.
SELECT entity_key, coalesce(event, '∅') AS event, coalesce(from_state, '∅') AS from_state, to_state
  FROM fsm.changes('beacons');
SELECT entity_key, event FROM fsm.changes('beacons', event => 'break');
SELECT count(*) AS newest_two FROM fsm.changes('beacons', lim => 2);
SELECT bool_and(at = fsm.uuid7_time(id)) AS at_is_id_time FROM fsm.changes('beacons');
-- Windows are read from the ids: since inclusive, until exclusive.
SELECT count(*) AS in_last_hour FROM fsm.changes('beacons', since => now() - interval '1 hour');
SELECT count(*) AS before_last_hour FROM fsm.changes('beacons', until => now() - interval '1 hour');
SELECT count(*) FROM fsm.changes('beacons', event => 'no_such_event');
SELECT * FROM fsm.changes('pg_class');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.changes(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.changes('beacons', col => 'owner_name');
\echo :LAST_ERROR_SQLSTATE

-- states_at: the state each key was in at a moment. History made at known
-- moments (as a superuser may append it, e.g. when importing from another
-- tool): beacon 10 on at 10:00, off at 11:00; beacon 11 on at 10:30.
INSERT INTO beacons_state_history (id, entity_key, event, from_state, to_state)
VALUES (fsm.uuid7('2024-05-01 09:00:00+00'), 10, NULL, NULL, 'off'),
       (fsm.uuid7('2024-05-01 10:00:00+00'), 10, 'switch_on', 'off', 'on'),
       (fsm.uuid7('2024-05-01 11:00:00+00'), 10, 'switch_off', 'on', 'off'),
       (fsm.uuid7('2024-05-01 10:30:00+00'), 11, NULL, NULL, 'on');
SET TIME ZONE 'UTC';
-- Keys in the order given; a key with no history by then is left out.
SELECT * FROM fsm.states_at('beacons', ARRAY[11, 10, 12], '2024-05-01 10:45:00+00');
SELECT * FROM fsm.states_at('beacons', ARRAY[10, 11], '2024-05-01 09:59:59.999+00');
-- A transition counts from its millisecond on.
SELECT * FROM fsm.states_at('beacons', ARRAY[10], '2024-05-01 11:00:00+00');
SELECT * FROM fsm.states_at('beacons', ARRAY[10], '2024-05-01 11:00:00.0005+00');
-- A self-transition does not enter the state again: since stays 10:30.
INSERT INTO beacons_state_history (id, entity_key, event, from_state, to_state)
VALUES (fsm.uuid7('2024-05-01 10:40:00+00'), 11, 'ping', 'on', 'on');
SELECT * FROM fsm.states_at('beacons', ARRAY[11], '2024-05-01 10:45:00+00');
-- Keys of another type are converted exactly, as for fire.
SELECT entity_key, state FROM fsm.states_at('beacons', ARRAY[10]::bigint[], '2024-05-01 12:00+00');
SELECT * FROM fsm.states_at('beacons', ARRAY[10.5], '2024-05-01 12:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.states_at('beacons', ARRAY[10], NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.states_at('beacons', ARRAY[10], 'infinity');
\echo :LAST_ERROR_SQLSTATE
-- Now, it agrees with current_states.
SELECT bool_and(a.state = c.state) AS agrees
  FROM fsm.states_at('beacons', ARRAY[1, 2, 3], now()) a
  JOIN fsm.current_states('beacons', ARRAY[1, 2, 3]) c USING (entity_key);
-- changes windows on the imported history.
SELECT entity_key, event FROM fsm.changes('beacons', since => '2024-05-01 10:00+00', until => '2024-05-01 11:00+00');
RESET TIME ZONE;

-- Rights: SELECT on the table at the call; under row level security, only
-- the history of rows the caller can see.
CREATE ROLE beacon_reader;
SET ROLE beacon_reader;
SELECT * FROM fsm.changes('beacons');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.states_at('beacons', ARRAY[1], now());
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT SELECT ON beacons TO beacon_reader;
ALTER TABLE beacons ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON beacons USING (owner_name = 'reader');
SET ROLE beacon_reader;
SELECT DISTINCT entity_key FROM fsm.changes('beacons') ORDER BY 1;
SELECT entity_key, state FROM fsm.states_at('beacons', ARRAY[1, 2, 3], now());
RESET ROLE;
ALTER TABLE beacons DISABLE ROW LEVEL SECURITY;

-- Several machines on one table: col names the binding. Functions whose
-- answer depends on the machine refuse to guess (42725); history and
-- changes without col read every binding.
SELECT fsm.create_machine('supply', '{
  "states": {"mains": {"initial": true}, "battery": {}},
  "events": {"unplug": {"from": "mains", "to": "battery"}}}');
ALTER TABLE beacons ADD COLUMN supply text;
UPDATE beacons SET supply = 'mains';
SELECT fsm.attach('beacons', 'supply', 'supply') IS NOT NULL AS attached;
INSERT INTO beacons (id, owner_name) VALUES (4, 'reader');
SELECT fsm.fire('beacons', 4, 'unplug');
SELECT * FROM fsm.current_states('beacons', ARRAY[4]);
\echo :LAST_ERROR_SQLSTATE
SELECT entity_key, state, last_event FROM fsm.current_states('beacons', ARRAY[4], col => 'supply');
SELECT entity_key, state, last_event FROM fsm.current_states('beacons', ARRAY[4], col => 'state');
SELECT entity_key, state FROM fsm.states_at('beacons', ARRAY[4], now(), col => 'supply');
SELECT * FROM fsm.states_at('beacons', ARRAY[4], now());
\echo :LAST_ERROR_SQLSTATE
SELECT coalesce(event, '∅') AS event, to_state FROM fsm.history('beacons', 4) ORDER BY id;
SELECT coalesce(event, '∅') AS event, to_state FROM fsm.history('beacons', 4, col => 'supply') ORDER BY id;
SELECT entity_key, event, to_state FROM fsm.changes('beacons', col => 'supply', lim => 1);
SELECT * FROM fsm.history('beacons', 4, col => 'nope');
\echo :LAST_ERROR_SQLSTATE

-- A read function answers the same wherever the call is written: in FROM,
-- in the select list, or beside another table through LATERAL.
SELECT (h).event, (h).to_state
  FROM (SELECT fsm.history('beacons', 4, col => 'supply') AS h) s ORDER BY (h).id;
SELECT b.id, h.to_state
  FROM beacons b, LATERAL fsm.history('beacons', b.id, col => 'state', lim => 1) h
 WHERE b.id IN (1, 2) ORDER BY b.id;
SELECT (fsm.changes('beacons', col => 'supply', lim => 1)).to_state;
