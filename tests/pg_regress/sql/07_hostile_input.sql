-- Bad input of every kind gets a clear error with its SQLSTATE (never
-- XX000) and changes nothing; what is accepted comes back exactly as given.
\set SHOW_CONTEXT never
SELECT fsm.create_machine('job', '{
  "states": {"queued": {"initial": true, "meta": {"n": 123456789012345678901234567890}},
             "running": {}, "done": {"final": true}},
  "events": {"start": {"from": "queued", "to": "running"},
             "finish": {"from": "running", "to": "done",
                        "payload": {"type": "object", "properties": {"n": {"type": "number", "maximum": 10}}}}}}');
CREATE TABLE jobs (id bigint PRIMARY KEY, status text);
SELECT fsm.attach('jobs', 'status', 'job');
INSERT INTO jobs (id) VALUES (1), (2), (3);

-- NULL arguments: 22004, never a silent NULL.
SELECT fsm.fire(NULL, 1, 'start');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('jobs', 1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('jobs', NULL::bigint, 'start');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('x', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine(NULL, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('x', '{}', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.machine_definition(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.to_dot(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.to_mermaid(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.drop_machine(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.attach('jobs', 'status', 'job', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.history('jobs', NULL::bigint);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.current_states('jobs', NULL::bigint[]);
\echo :LAST_ERROR_SQLSTATE

-- A table oid that names nothing: 42P01.
SELECT fsm.fire(0, 1, 'start');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.history(4294967295::oid::regclass, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.detach(0, 'status');
\echo :LAST_ERROR_SQLSTATE

-- Keys are converted to the table's key type exactly, or refused.
SELECT fsm.fire('jobs', 1.5, 'start');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('jobs', 'one'::text, 'start');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('jobs', now(), 'start');
\echo :LAST_ERROR_SQLSTATE
SELECT id, status FROM jobs ORDER BY id;
SELECT fsm.fire('jobs', 1::numeric, 'start');
SELECT fsm.fire('jobs', '2'::text, 'start');
SELECT entity_key, state FROM fsm.current_states('jobs', ARRAY[1.0, 2, 3]::numeric[]);
SELECT entity_key, state FROM fsm.current_states('jobs', ARRAY[1.5]::numeric[]);
\echo :LAST_ERROR_SQLSTATE

-- On a text key: a key of another type, refused on the way (both crashed
-- the server on e9d40d4), and a NULL key written by an UPDATE (23502).
CREATE TABLE tjobs (k text PRIMARY KEY, status text);
SELECT fsm.attach('tjobs', 'status', 'job');
INSERT INTO tjobs (k) VALUES ('6'), ('a');
SELECT fsm.fire('tjobs', 6, 'finish', '{"n": 11}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('tjobs', 6, 'start');
UPDATE tjobs SET k = NULL, status = 'running' WHERE k = 'a';
\echo :LAST_ERROR_SQLSTATE
UPDATE tjobs SET k = NULL, status = 'done' WHERE k = 'a';
\echo :LAST_ERROR_SQLSTATE
SELECT k, status FROM tjobs ORDER BY k;

-- Payloads are stored exactly as given: no number rounded, no depth limit
-- where nothing needs to look inside.
SELECT fsm.create_machine('deep', '{"states": {"a": {"initial": true}, "b": {}},
  "events": {"go": {"from": "a", "to": "b"}}}');
CREATE TABLE deeps (id int PRIMARY KEY, status text);
SELECT fsm.attach('deeps', 'status', 'deep');
INSERT INTO deeps VALUES (1), (2);
SELECT fsm.fire('deeps', 1, 'go', '{"big": 123456789012345678901234567890, "huge": 1e400}');
SELECT payload::text FROM fsm.history('deeps', 1) WHERE event = 'go';
SELECT fsm.fire('deeps', 2, 'go', (repeat('[', 300) || repeat(']', 300))::jsonb);
SELECT payload = (repeat('[', 300) || repeat(']', 300))::jsonb AS stored_whole
  FROM fsm.history('deeps', 2) WHERE event = 'go';
-- Where a schema must look inside, numbers are read exactly, and a
-- document deeper than 128 levels is refused with 54001.
SELECT fsm.fire('jobs', 1, 'finish', '{"n": 10.000000000000000000001}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('jobs', 1, 'finish', ('{"x": ' || repeat('[', 200) || repeat(']', 200) || '}')::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('jobs', 1, 'finish', '{"n": 1e400}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('jobs', 1, 'finish', '{"n": 9.99999999999999999999}');
-- Definitions keep their numbers exactly too.
SELECT fsm.machine_definition('job') -> 'states' -> 'queued' -> 'meta';
SELECT fsm.create_machine('deepdef', ('{"states": {"a": {"initial": true, "meta": '
  || repeat('[', 200) || repeat(']', 200) || '}}, "events": {}}')::jsonb);
\echo :LAST_ERROR_SQLSTATE

-- Moments a UUIDv7 cannot hold: 22008.
SELECT fsm.uuid7('infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.uuid7('1969-12-31 23:59:59+00');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.history('jobs', 1, since => '-infinity');
\echo :LAST_ERROR_SQLSTATE

-- Long values are cut in messages.
SELECT fsm.fire('jobs', 3, repeat('e', 3000000));
\echo :LAST_ERROR_SQLSTATE
UPDATE jobs SET status = repeat('s', 100000) WHERE id = 3;
\echo :LAST_ERROR_SQLSTATE

-- State names are bound parameters: quotes and backslashes are just
-- characters, whatever standard_conforming_strings says.
SET standard_conforming_strings = off;
SELECT fsm.create_machine('quotes', '{"states": {"it''s": {"initial": true}, "back\\\\slash": {}},
  "events": {"go": {"from": "it''s", "to": "back\\\\slash"}}}');
RESET standard_conforming_strings;
CREATE TABLE quoted (id int PRIMARY KEY, status text);
SELECT fsm.attach('quoted', 'status', 'quotes');
INSERT INTO quoted VALUES (1);
SET standard_conforming_strings = off;
SELECT fsm.fire('quoted', 1, 'go');
RESET standard_conforming_strings;
SELECT status FROM quoted;

-- A partitioned table is attached as a whole; one of its partitions alone
-- is refused (0A000): its rows would be checked and recorded twice.
CREATE TABLE pjobs (id int PRIMARY KEY, status text) PARTITION BY RANGE (id);
CREATE TABLE pjobs_1 PARTITION OF pjobs FOR VALUES FROM (0) TO (100);
SELECT fsm.attach('pjobs', 'status', 'job');
INSERT INTO pjobs VALUES (1);
SELECT fsm.attach('pjobs_1', 'status', 'job');
\echo :LAST_ERROR_SQLSTATE

-- Nothing above changed a row it refused.
SELECT id, status FROM jobs ORDER BY id;
SELECT count(*) FROM jobs_status_history;
