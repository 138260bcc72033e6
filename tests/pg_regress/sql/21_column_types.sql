-- State columns of other types than text: an enum whose labels cover the
-- machine's states (extra labels are allowed, and refused as states), and
-- integer columns where every state name is an integer as the type writes
-- it. Everything else works as on a text column.
\set SHOW_CONTEXT never
CREATE TYPE sluice_state AS ENUM ('open', 'closed', 'locked', 'unused');
SELECT fsm.create_machine('sluice', '{
  "states": {"open": {"initial": true}, "closed": {}, "locked": {}},
  "events": {"close": {"from": "open", "to": "closed"}, "lock": {"from": "closed", "to": "locked"},
             "unlock": {"from": "locked", "to": "closed"}, "reopen": {"from": "closed", "to": "open"}}}');
CREATE TABLE sluices (id int PRIMARY KEY, state sluice_state);
SELECT fsm.attach('sluices', 'state', 'sluice') IS NOT NULL AS attached;
INSERT INTO sluices (id) VALUES (1), (2);
SELECT fsm.fire('sluices', 1, 'close');
UPDATE sluices SET state = 'locked' WHERE id = 1;
SELECT id, state, pg_typeof(state) FROM sluices ORDER BY id;
-- Refusals as on text: not an event (55000), a label that is no state
-- (55000), a new row not in the initial state (55000).
UPDATE sluices SET state = 'open' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE sluices SET state = 'unused' WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO sluices VALUES (3, 'closed');
\echo :LAST_ERROR_SQLSTATE
SELECT event, from_state, to_state FROM fsm.history('sluices', 1) ORDER BY id;
SELECT entity_key, state FROM fsm.current_states('sluices', ARRAY[1, 2]);
SELECT event, allowed FROM fsm.available_events('sluices', 1) ORDER BY event;
-- An enum that lacks a state is refused at attach, and so is a
-- replacement that adds a state the enum does not have.
CREATE TYPE small_sluice AS ENUM ('open', 'closed');
CREATE TABLE small_sluices (id int PRIMARY KEY, state small_sluice);
SELECT fsm.attach('small_sluices', 'state', 'sluice');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('sluice', '{
  "states": {"open": {"initial": true}, "closed": {}, "locked": {}, "broken": {"final": true}},
  "events": {"close": {"from": "open", "to": "closed"}, "lock": {"from": "closed", "to": "locked"},
             "unlock": {"from": "locked", "to": "closed"}, "reopen": {"from": "closed", "to": "open"},
             "break": {"from": "*", "to": "broken"}}}', replace => true);
\echo :LAST_ERROR_SQLSTATE
SELECT version FROM fsm.machines WHERE name = 'sluice';

-- Integer columns (smallint, integer, bigint): state names are integers.
SELECT fsm.create_machine('form_status', '{
  "states": {"10": {"initial": true}, "20": {}, "30": {"final": true}},
  "events": {"submit": {"from": "10", "to": "20"}, "approve": {"from": "20", "to": "30"}}}');
CREATE TABLE forms (id int PRIMARY KEY, status smallint);
SELECT fsm.attach('forms', 'status', 'form_status') IS NOT NULL AS attached;
INSERT INTO forms (id) VALUES (1), (2);
SELECT fsm.fire('forms', 1, 'submit');
UPDATE forms SET status = 30 WHERE id = 1;
UPDATE forms SET status = 30 WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE
SELECT id, status, pg_typeof(status) FROM forms ORDER BY id;
SELECT event, from_state, to_state FROM forms_status_history ORDER BY id;
-- A state that is not an integer as the type writes it, or out of its
-- range, is refused at attach; so are other types.
SELECT fsm.create_machine('form_padded', '{
  "states": {"010": {"initial": true}, "20": {"final": true}},
  "events": {"submit": {"from": "010", "to": "20"}}}');
CREATE TABLE padded_forms (id int PRIMARY KEY, status int);
SELECT fsm.attach('padded_forms', 'status', 'form_padded');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('form_big', '{
  "states": {"1": {"initial": true}, "40000": {"final": true}},
  "events": {"grow": {"from": "1", "to": "40000"}}}');
CREATE TABLE small_forms (id int PRIMARY KEY, status smallint);
SELECT fsm.attach('small_forms', 'status', 'form_big');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE flag_forms (id int PRIMARY KEY, status boolean);
SELECT fsm.attach('flag_forms', 'status', 'form_status');
\echo :LAST_ERROR_SQLSTATE
