-- Keys as text: fire, can_fire and available_events also take the key as
-- text, for an untyped literal ('42') or a parameter a driver binds
-- without a type, which anyelement cannot resolve. The text is converted
-- to the table's key type exactly, as a key of any other type is.
\set SHOW_CONTEXT never
CREATE SCHEMA textkeys;
CREATE TABLE textkeys.jobs (id bigint PRIMARY KEY, state text);
CREATE TABLE textkeys.tokens (id uuid PRIMARY KEY, state text);
CREATE TABLE textkeys.codes (id varchar(4) PRIMARY KEY, state text);
SELECT fsm.create_machine('textkeys_job', '{
  "states": {"queued": {"initial": true}, "running": {}, "done": {"final": true}},
  "events": {"start": {"from": "queued", "to": "running"}, "finish": {"from": "running", "to": "done"}}}');
SELECT fsm.attach('textkeys.jobs', 'state', 'textkeys_job') IS NOT NULL AS attached;
SELECT fsm.attach('textkeys.tokens', 'state', 'textkeys_job') IS NOT NULL AS attached;
SELECT fsm.attach('textkeys.codes', 'state', 'textkeys_job') IS NOT NULL AS attached;
INSERT INTO textkeys.codes (id) VALUES ('AB12');
INSERT INTO textkeys.jobs (id) VALUES (1), (2);
INSERT INTO textkeys.tokens (id) VALUES ('6f1c1b5e-3d7a-4a55-9d0e-3a1f6f3c2b10');

-- An untyped literal.
SELECT fsm.can_fire('textkeys.jobs', '1', 'start') AS may_start;
SELECT fsm.fire('textkeys.jobs', '1', 'start');
SELECT event, allowed FROM fsm.available_events('textkeys.jobs', '1') ORDER BY event;
-- Text is read by the key type's input function: any spelling it accepts.
SELECT fsm.fire('textkeys.tokens', '6F1C1B5E-3D7A-4A55-9D0E-3A1F6F3C2B10', 'start');
SELECT fsm.fire('textkeys.jobs', ' 02 ', 'start');
-- An untyped parameter, as a driver may bind it.
PREPARE finish_job AS SELECT fsm.fire('textkeys.jobs', $1, 'finish');
EXECUTE finish_job('1');
SELECT id, state FROM textkeys.jobs ORDER BY id;
SELECT entity_key, event, from_state, to_state FROM textkeys.jobs_state_history ORDER BY id;
-- Typed keys still take the anyelement form.
SELECT fsm.fire('textkeys.jobs', 2::bigint, 'finish');

-- Text that is not exactly a key of the table's type changes nothing.
SELECT fsm.fire('textkeys.jobs', 'two', 'start');
SELECT fsm.fire('textkeys.jobs', '1.5', 'start');
SELECT fsm.fire('textkeys.jobs', '3', 'start');
SELECT fsm.can_fire('textkeys.tokens', 'not-a-uuid', 'start');
-- A key type that would cut the text keeps the round trip: 'AB12345' is
-- not the key 'AB12'.
SELECT fsm.fire('textkeys.codes', 'AB12345', 'start');
SELECT fsm.fire('textkeys.codes', 'AB12', 'start');
SELECT count(*) AS history_rows FROM textkeys.jobs_state_history;
