-- Attaching a machine to a table column, and detaching it.
\set SHOW_CONTEXT never
SELECT fsm.create_machine('door', '{
  "states": {"closed": {"initial": true}, "open": {}, "locked": {}},
  "events": {"open":   {"from": "closed", "to": "open"},
             "close":  {"from": "open", "to": "closed"},
             "lock":   {"from": "closed", "to": "locked"},
             "unlock": {"from": "locked", "to": "closed"}}
}');

CREATE TABLE doors (id int PRIMARY KEY, state text, label varchar(20));
INSERT INTO doors VALUES (1, 'closed', 'front'), (2, 'open', 'back');

SELECT fsm.attach('doors', 'state', 'door');
SELECT tbl, col, machine, history, protect, notify FROM fsm.bindings;
-- The history table: id, entity_key of the key's type, and the rest.
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'doors_state_history'::regclass AND attnum > 0 ORDER BY attnum;

-- Refusals, each with its SQLSTATE.
SELECT fsm.attach('doors', 'state', 'door');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.attach('doors', 'nope', 'door');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.attach('doors', 'id', 'door');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.attach('doors', 'label', 'no_such_machine');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE keyless (state text);
SELECT fsm.attach('keyless', 'state', 'door');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW door_view AS SELECT * FROM doors;
SELECT fsm.attach('door_view', 'state', 'door');
\echo :LAST_ERROR_SQLSTATE
-- Rows in values that are not states: counted per value.
CREATE TABLE gates (id int PRIMARY KEY, state text);
INSERT INTO gates VALUES (1, 'ajar'), (2, 'ajar'), (3, NULL), (4, 'open');
SELECT fsm.attach('gates', 'state', 'door');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS gate_bindings FROM fsm.bindings WHERE tbl = 'gates'::regclass;

-- Guards and actions are checked when the machine is created: a function
-- of that name taking (a row, jsonb) and returning boolean (guard) or void
-- (action) must exist. Unqualified names are looked up in the search_path.
SELECT fsm.create_machine('unguarded', '{"states": {"a": {"initial": true}, "b": {}},
  "events": {"go": {"from": "a", "to": "b", "guard": "public.no_such_guard"}}}');
\echo :LAST_ERROR_SQLSTATE
CREATE FUNCTION public.takes_text(r text, p jsonb) RETURNS boolean LANGUAGE sql AS 'SELECT true';
SELECT fsm.create_machine('unguarded', '{"states": {"a": {"initial": true}, "b": {}},
  "events": {"go": {"from": "a", "to": "b", "guard": "takes_text"}}}');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE gadgets (id int PRIMARY KEY, state text);
CREATE FUNCTION public.counts(r gadgets, p jsonb) RETURNS integer LANGUAGE sql AS 'SELECT 1';
SELECT fsm.create_machine('unguarded', '{"states": {"a": {"initial": true}, "b": {}},
  "events": {"go": {"from": "a", "to": "b", "action": "public.counts"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('unguarded', '{"states": {"a": {"initial": true}, "b": {}},
  "events": {"go": {"from": "a", "to": "b", "guard": "counts"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS stored FROM fsm.machines WHERE name = 'unguarded';

-- A guard that exists, but not for the attached table's row type: refused
-- at attach.
CREATE FUNCTION public.may_go(r gadgets, p jsonb) RETURNS boolean LANGUAGE sql AS 'SELECT true';
SELECT fsm.create_machine('guarded', '{"states": {"a": {"initial": true}, "b": {}},
  "events": {"go": {"from": "a", "to": "b", "guard": "public.may_go"}}}');
CREATE TABLE things (id int PRIMARY KEY, state text);
SELECT fsm.attach('things', 'state', 'guarded');
\echo :LAST_ERROR_SQLSTATE

-- A machine in use cannot be dropped, nor replaced so as to strand rows.
SELECT fsm.drop_machine('door');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('door', '{"states": {"closed": {"initial": true}, "locked": {}},
  "events": {"lock": {"from": "closed", "to": "locked"}, "unlock": {"from": "locked", "to": "closed"}}}', true);
\echo :LAST_ERROR_SQLSTATE

-- History tables are append-only.
UPDATE doors_state_history SET actor = 'x';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM doors_state_history;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE doors_state_history;
\echo :LAST_ERROR_SQLSTATE

-- Detaching removes the triggers; the history stays unless asked.
SELECT fsm.detach('doors', 'state');
UPDATE doors SET state = 'nonsense' WHERE id = 1;
SELECT to_regclass('doors_state_history') IS NOT NULL AS history_kept;
SELECT fsm.detach('doors', 'state');
\echo :LAST_ERROR_SQLSTATE
UPDATE doors SET state = 'closed' WHERE id = 1;
SELECT fsm.attach('doors', 'label', 'door');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE doors_state_history;
SELECT fsm.attach('doors', 'state', 'door') IS NOT NULL AS reattached;
SELECT fsm.detach('doors', 'state', drop_history => true);
SELECT to_regclass('doors_state_history') IS NULL AS history_dropped;

-- Dropping a table forgets its bindings.
SELECT fsm.attach('doors', 'state', 'door') IS NOT NULL AS attached;
DROP TABLE doors CASCADE;
SELECT count(*) AS bindings_left FROM fsm.bindings;
SELECT fsm.drop_machine('door');
