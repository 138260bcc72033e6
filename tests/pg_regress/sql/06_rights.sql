-- Rights (API.md §8), tried as the roles a real database has: a login with
-- no rights, a role with UPDATE, the table's owner (no superuser), and a
-- role that may create machines. Each refusal is 42501.
\set SHOW_CONTEXT never
\set VERBOSITY default
CREATE ROLE app_owner LOGIN;
CREATE ROLE app_user LOGIN;
CREATE ROLE nobody LOGIN;
CREATE SCHEMA app AUTHORIZATION app_owner;
GRANT USAGE ON SCHEMA app TO app_user, nobody;
SELECT format('GRANT CREATE ON DATABASE %I TO app_owner', current_database()) \gexec

-- The owner creates a machine and attaches it: no superuser needed, as in
-- an ORM migration.
SET ROLE app_owner;
SELECT fsm.create_machine('helpdesk', '{
  "states": {"open": {"initial": true}, "done": {"final": true}, "void": {"final": true}},
  "events": {"close": {"from": "open", "to": "done"}, "drop": {"from": "open", "to": "void"}}}');
CREATE TABLE app.tickets (id text PRIMARY KEY, owner_name text, status text);
GRANT SELECT, INSERT, UPDATE ON app.tickets TO app_user;
SELECT fsm.attach('app.tickets', 'status', 'helpdesk');
INSERT INTO app.tickets (id, owner_name) VALUES ('T-1', 'app_user'), ('T-2', 'someone_else'), ('T-3', 'app_user');
SELECT name, owner FROM fsm.machines;
RESET ROLE;

-- The history table belongs to the table's owner, and nobody else has a
-- grant on it: history is read through the read functions.
SELECT c.relowner::regrole AS owner, c.relacl IS NULL OR c.relacl::text NOT LIKE '%app_user%' AS no_grant_to_app_user
  FROM pg_class c WHERE c.oid = 'app.tickets_status_history'::regclass;

-- A role with nothing: cannot create machines, attach, fire or read.
SET ROLE nobody;
SELECT fsm.create_machine('mine', '{"states": {"a": {"initial": true}}, "events": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.drop_machine('helpdesk');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('helpdesk', '{"states": {"a": {"initial": true}}, "events": {}}', true);
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.attach('app.tickets', 'owner_name', 'helpdesk');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.detach('app.tickets', 'status');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('app.tickets', 'T-1'::text, 'close');
\echo :LAST_ERROR_SQLSTATE
-- A key of another type than the table's (a crash on e9d40d4).
SELECT fsm.fire('app.tickets', 6, 'close');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.history('app.tickets', 'T-1'::text);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM fsm.current_states('app.tickets', ARRAY['T-1']);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM app.tickets_status_history;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A role with UPDATE fires and reads history without any grant on the
-- history table.
SET ROLE app_user;
SELECT fsm.fire('app.tickets', 'T-1'::text, 'close');
SELECT event, from_state, to_state, db_user FROM fsm.history('app.tickets', 'T-1'::text);
-- A NULL key in an UPDATE is refused before anything reads it (23502).
UPDATE app.tickets SET id = NULL, status = 'void' WHERE id = 'T-3';
\echo :LAST_ERROR_SQLSTATE
-- A key of another type is converted exactly, or refused.
SELECT fsm.fire('app.tickets', 6, 'close');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- REVOKE takes effect at once.
SET ROLE app_owner;
REVOKE SELECT ON app.tickets FROM app_user;
RESET ROLE;
SET ROLE app_user;
SELECT * FROM fsm.history('app.tickets', 'T-1'::text);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE app_owner;
GRANT SELECT ON app.tickets TO app_user;

-- Row level security: app_user sees only its own tickets, and only their
-- history.
ALTER TABLE app.tickets ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON app.tickets USING (owner_name = current_user);
SELECT fsm.fire('app.tickets', 'T-2'::text, 'drop');
RESET ROLE;
SET ROLE app_user;
SELECT count(*) AS visible_history FROM fsm.history('app.tickets', 'T-2'::text);
SELECT entity_key, state FROM fsm.current_states('app.tickets', ARRAY['T-1', 'T-2', 'T-3']);
-- fire cannot move a row the policy hides: it is not found.
SELECT fsm.fire('app.tickets', 'T-2'::text, 'close');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The history table follows its table's owner, and writes go on.
CREATE ROLE new_owner;
ALTER TABLE app.tickets OWNER TO new_owner;
SELECT c.relowner::regrole AS history_owner FROM pg_class c WHERE c.oid = 'app.tickets_status_history'::regclass;
SET ROLE app_user;
SELECT fsm.fire('app.tickets', 'T-3'::text, 'close');
SELECT event, to_state FROM fsm.history('app.tickets', 'T-3'::text);
RESET ROLE;
ALTER TABLE app.tickets OWNER TO app_owner;
SELECT c.relowner::regrole AS history_owner FROM pg_class c WHERE c.oid = 'app.tickets_status_history'::regclass;

-- The owner detaches without a superuser; the machine's owner drops it.
SET ROLE app_owner;
SELECT fsm.detach('app.tickets', 'status', drop_history => true);
SELECT fsm.drop_machine('helpdesk');
RESET ROLE;
