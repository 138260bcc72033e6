-- Schema changes on a bound table are followed, or refused with a clear
-- error; never a table whose writes fail. A second session (dblink) keeps
-- bindings cached across the changes.
\set SHOW_CONTEXT never
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT fsm.create_machine('door', '{"states": {"shut": {"initial": true}, "open": {}},
  "events": {"open": {"from": "shut", "to": "open"}, "shut": {"from": "open", "to": "shut"}}}') AS version;
CREATE SCHEMA house;
CREATE TABLE house.doors (id int PRIMARY KEY, status text, note text);
SELECT fsm.attach('house.doors', 'status', 'door') AS history_table;
INSERT INTO house.doors (id) VALUES (1), (2);
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port')));
-- The other session caches the binding.
SELECT dblink_exec('other', $$UPDATE house.doors SET status = 'open' WHERE id = 1$$);

-- Renaming the column: the binding follows.
ALTER TABLE house.doors RENAME COLUMN status TO state;
SELECT tbl, col, history FROM fsm.bindings WHERE machine = 'door';
INSERT INTO house.doors (id) VALUES (3);
UPDATE house.doors SET state = 'open' WHERE id = 3;
SELECT dblink_exec('other', $$UPDATE house.doors SET state = 'shut' WHERE id = 1$$);
SELECT fsm.fire('house.doors', 2, 'open');

-- Renaming the table, the history table and the schema: followed too.
ALTER TABLE house.doors RENAME TO gates;
ALTER TABLE house.doors_status_history RENAME TO gate_log;
ALTER SCHEMA house RENAME TO yard;
SELECT tbl, col, history FROM fsm.bindings WHERE machine = 'door';
SELECT dblink_exec('other', $$UPDATE yard.gates SET state = 'open' WHERE id = 1$$);
SELECT dblink_exec('other', $$INSERT INTO yard.gates (id) VALUES (4)$$);
UPDATE yard.gates SET state = 'shut' WHERE id = 2;
SELECT fsm.fire('yard.gates', 3, 'shut');
SELECT entity_key, event, from_state, to_state FROM yard.gate_log ORDER BY id;

-- What the binding cannot follow is refused, and nothing changes.
DROP TABLE yard.gate_log;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE yard.gates DROP COLUMN state;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE yard.gates DROP COLUMN state CASCADE;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE yard.gates ALTER COLUMN state TYPE integer USING 0;
\echo :LAST_ERROR_SQLSTATE
UPDATE yard.gates SET note = 'n';
ALTER TABLE yard.gates DROP CONSTRAINT doors_pkey, ADD PRIMARY KEY (id, note);
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE yard.gates DROP CONSTRAINT doors_pkey;
\echo :LAST_ERROR_SQLSTATE
SELECT tbl, col, history FROM fsm.bindings WHERE machine = 'door';
UPDATE yard.gates SET state = 'open' WHERE id = 2;
SELECT dblink_exec('other', $$UPDATE yard.gates SET state = 'shut' WHERE id = 2$$);
SELECT count(*) AS history_rows FROM yard.gate_log;

-- A new owner: writes go on, and history follows the owner.
CREATE ROLE door_keeper;
ALTER TABLE yard.gates OWNER TO door_keeper;
SELECT pg_get_userbyid(relowner) AS history_owner FROM pg_class WHERE oid = 'yard.gate_log'::regclass;
UPDATE yard.gates SET state = 'open' WHERE id = 2;
SELECT dblink_exec('other', $$UPDATE yard.gates SET state = 'shut' WHERE id = 2$$);
ALTER TABLE yard.gates OWNER TO CURRENT_USER;

-- Detaching keeps the history; attaching again continues it.
SELECT fsm.detach('yard.gates', 'state');
UPDATE yard.gates SET state = 'open' WHERE id = 2;
UPDATE yard.gates SET state = 'shut' WHERE id = 2;
ALTER TABLE yard.gate_log RENAME TO gates_state_history;
SELECT fsm.attach('yard.gates', 'state', 'door') AS history_table;
UPDATE yard.gates SET state = 'open' WHERE id = 2;
SELECT count(*) AS history_rows, count(*) FILTER (WHERE entity_key = 2) AS of_gate_2 FROM yard.gates_state_history;

-- Dropping the table takes the binding with it; the history stays.
DROP TABLE yard.gates;
SELECT count(*) AS bindings FROM fsm.bindings WHERE machine = 'door';
SELECT count(*) AS history_rows FROM yard.gates_state_history;
SELECT dblink_disconnect('other');
DROP SCHEMA yard CASCADE;
DROP ROLE door_keeper;
