-- Analytics: fsm.time_in_state and fsm.state_stats, exact over
-- [since, until). The state an entity was already in at since is carried in
-- from the history before the window and counts from since; a state still
-- held at until counts up to until. A self-transition does not leave the
-- state: it neither ends a stay nor counts as entering.
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET intervalstyle = 'postgres';
SELECT fsm.create_machine('bulb', '{
  "states": {"off": {"initial": true}, "on": {}, "broken": {"final": true}},
  "events": {"switch_on": {"from": "off", "to": "on"}, "switch_off": {"from": "on", "to": "off"},
             "flicker": {"from": "on", "to": "on"}, "smash": {"from": ["on", "off"], "to": "broken"}}}');
CREATE TABLE bulbs (id int PRIMARY KEY, state text);
SELECT fsm.attach('bulbs', 'state', 'bulb') IS NOT NULL AS attached;
-- History at known moments, written as an import would write it (the
-- moment of a row is the time inside its UUIDv7 id).
INSERT INTO bulbs_state_history (id, entity_key, event, from_state, to_state) VALUES
  (fsm.uuid7('2026-01-01 08:00+00'), 1, NULL, NULL, 'off'),
  (fsm.uuid7('2026-01-01 09:00+00'), 1, 'switch_on', 'off', 'on'),
  (fsm.uuid7('2026-01-01 09:30+00'), 1, 'flicker', 'on', 'on'),
  (fsm.uuid7('2026-01-01 11:00+00'), 1, 'switch_off', 'on', 'off'),
  (fsm.uuid7('2026-01-01 12:00+00'), 1, 'switch_on', 'off', 'on'),
  (fsm.uuid7('2026-01-01 10:30+00'), 2, NULL, NULL, 'off'),
  (fsm.uuid7('2026-01-01 10:45+00'), 2, 'smash', 'off', 'broken'),
  (fsm.uuid7('2026-01-01 14:00+00'), 3, NULL, NULL, 'off');

-- Bulb 1 is "on" at 10:00 (since 09:00; the flicker did not leave it):
-- carried in, it counts from 10:00 and was not entered in the window.
-- Bulb 2 was created in the window; bulb 3 after it (no rows); 4 never.
SELECT * FROM fsm.time_in_state('bulbs', ARRAY[1, 2, 3, 4],
                                '2026-01-01 10:00+00', '2026-01-01 13:00+00');
-- Keys come back in the order given, as passed (here as bigint).
SELECT * FROM fsm.time_in_state('bulbs', ARRAY[2, 1]::bigint[],
                                '2026-01-01 07:00+00', '2026-01-01 09:15+00');
-- A window inside one stay: the whole window, entered 0 times.
SELECT * FROM fsm.time_in_state('bulbs', ARRAY[1], '2026-01-01 09:10+00', '2026-01-01 09:50+00');
-- An empty window has nothing in it.
SELECT * FROM fsm.time_in_state('bulbs', ARRAY[1], '2026-01-01 10:00+00', '2026-01-01 10:00+00');

-- state_stats over the same window, every state of the machine in name
-- order: stays begun in the window, stays still held at its end, the
-- median and 95th percentile of the stays that ended in it (a stay
-- carried in counts from since), and where they went next.
SELECT * FROM fsm.state_stats('bulbs', '2026-01-01 10:00+00', '2026-01-01 13:00+00');
-- Without since: from the first history row; without until: to the last.
SELECT * FROM fsm.state_stats('bulbs');
SELECT * FROM fsm.state_stats('bulbs', until => '2026-01-01 09:45+00');

-- Transitions made by fire count too.
INSERT INTO bulbs VALUES (5);
SELECT fsm.fire('bulbs', 5, 'smash');
SELECT state, entered, still_in FROM fsm.state_stats('bulbs', since => now() - interval '1 minute');
SELECT entity_key, state, entered FROM fsm.time_in_state('bulbs', ARRAY[5],
       now() - interval '1 minute', now() + interval '1 minute');

-- Errors: NULL arguments (22004), a window that ends before it starts
-- (22023), no machine (42704), several machines and no col (42725).
SELECT * FROM fsm.time_in_state('bulbs', ARRAY[1], NULL, '2026-01-01 13:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.time_in_state('bulbs', NULL::int[], '2026-01-01 10:00+00', '2026-01-01 13:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.time_in_state('bulbs', ARRAY[1], '2026-01-01 13:00+00', '2026-01-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.state_stats('bulbs', '2026-01-01 13:00+00', '2026-01-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.state_stats(NULL);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE unbound_bulbs (id int PRIMARY KEY, state text);
SELECT * FROM fsm.state_stats('unbound_bulbs');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.time_in_state('bulbs', ARRAY[1.5], '2026-01-01 10:00+00', '2026-01-01 13:00+00');
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE bulbs ADD COLUMN socket text DEFAULT 'dry';
SELECT fsm.create_machine('socket', '{"states": {"dry": {"initial": true}, "wet": {}},
  "events": {"spill": {"from": "dry", "to": "wet"}, "dry_up": {"from": "wet", "to": "dry"}}}');
SELECT fsm.attach('bulbs', 'socket', 'socket') IS NOT NULL AS attached;
SELECT * FROM fsm.state_stats('bulbs');
\echo :LAST_ERROR_SQLSTATE
SELECT state, entered FROM fsm.state_stats('bulbs', col => 'socket');
SELECT state, entered FROM fsm.time_in_state('bulbs', ARRAY[1], '2026-01-01 10:00+00',
                                             '2026-01-01 13:00+00', col => 'state');

-- Rights: SELECT on the table now (42501 without); under row level
-- security only the rows the caller can see count.
CREATE ROLE bulb_reader;
SET ROLE bulb_reader;
SELECT * FROM fsm.state_stats('bulbs', col => 'state');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.time_in_state('bulbs', ARRAY[1], '2026-01-01 10:00+00', '2026-01-01 13:00+00', 'state');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT SELECT ON bulbs TO bulb_reader;
ALTER TABLE bulbs ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_bulb_2 ON bulbs FOR SELECT TO bulb_reader USING (id = 2);
INSERT INTO bulbs (id) VALUES (1), (2);
SET ROLE bulb_reader;
SELECT state, entered, still_in FROM fsm.state_stats('bulbs', '2026-01-01 10:00+00', '2026-01-01 13:00+00', 'state');
SELECT * FROM fsm.time_in_state('bulbs', ARRAY[1, 2], '2026-01-01 10:00+00', '2026-01-01 13:00+00', 'state');
RESET ROLE;
DROP POLICY only_bulb_2 ON bulbs;
ALTER TABLE bulbs DISABLE ROW LEVEL SECURITY;
REVOKE SELECT ON bulbs FROM bulb_reader;
DROP ROLE bulb_reader;
