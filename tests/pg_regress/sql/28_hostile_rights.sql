-- Rights a hostile role must not get around (API.md §8): a kept history
-- is taken back only by its owner; an idempotency key says nothing before
-- the caller's rights are checked; reading history checks every column it
-- reads; a guard's name is read as PostgreSQL reads an identifier, never
-- through the search_path of whoever loads the binding.
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS fsm;
SELECT fsm.create_machine('hr_doc', '{
  "states": {"draft": {"initial": true}, "sent": {}},
  "events": {"send": {"from": "draft", "to": "sent"}}}') AS version;
CREATE ROLE hr_victim;
CREATE ROLE hr_intruder;
CREATE SCHEMA hr_shared;
GRANT USAGE, CREATE ON SCHEMA hr_shared TO hr_victim, hr_intruder;

-- The victim's history, kept by its detach, then its table dropped.
SET ROLE hr_victim;
CREATE TABLE hr_shared.docs (id int PRIMARY KEY, s text);
SELECT fsm.attach('hr_shared.docs', 's', 'hr_doc') AS history;
INSERT INTO hr_shared.docs VALUES (1);
SELECT fsm.fire('hr_shared.docs', 1, 'send', '{"secret": "victim payload"}');
SELECT fsm.detach('hr_shared.docs', 's');
DROP TABLE hr_shared.docs;
RESET ROLE;
-- The intruder makes a table of the same name and attaches: refused.
SET ROLE hr_intruder;
CREATE TABLE hr_shared.docs (id int PRIMARY KEY, s text);
SELECT fsm.attach('hr_shared.docs', 's', 'hr_doc') AS history;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM hr_shared.docs_s_history;
RESET ROLE;
SELECT c.relname, pg_catalog.pg_get_userbyid(c.relowner) AS owner
  FROM pg_class c WHERE c.relname = 'docs_s_history';
-- Its owner takes it back.
SET ROLE hr_intruder;
DROP TABLE hr_shared.docs;
RESET ROLE;
SET ROLE hr_victim;
CREATE TABLE hr_shared.docs (id int PRIMARY KEY, s text);
INSERT INTO hr_shared.docs VALUES (1, 'sent');
SELECT fsm.attach('hr_shared.docs', 's', 'hr_doc') AS history;
SELECT event, to_state, payload FROM fsm.history('hr_shared.docs', 1);
RESET ROLE;

-- An idempotency key tells a role without rights nothing.
CREATE TABLE hr_invoices (id int PRIMARY KEY, s text);
SELECT fsm.attach('hr_invoices', 's', 'hr_doc') AS history;
INSERT INTO hr_invoices VALUES (1001), (1002);
SELECT fsm.fire('hr_invoices', 1001, 'send', idempotency_key => 'req-7');
SET ROLE hr_intruder;
SELECT fsm.fire('hr_invoices', 1001, 'send', idempotency_key => 'req-7');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('hr_invoices', 1002, 'send', idempotency_key => 'req-7');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- A role that may move 1002 but not see 1001 (row-level security) learns
-- that the key was used, not for what.
GRANT SELECT, UPDATE ON hr_invoices TO hr_intruder;
ALTER TABLE hr_invoices ENABLE ROW LEVEL SECURITY;
CREATE POLICY hr_only_1002 ON hr_invoices USING (id = 1002);
SET ROLE hr_intruder;
SELECT fsm.fire('hr_invoices', 1001, 'send', idempotency_key => 'req-7');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('hr_invoices', 1002, 'send', idempotency_key => 'req-7');
RESET ROLE;
ALTER TABLE hr_invoices DISABLE ROW LEVEL SECURITY;
-- A NULL entity_key its owner allowed is another entity's, not an XX000.
ALTER TABLE hr_invoices_s_history ALTER COLUMN entity_key DROP NOT NULL;
INSERT INTO hr_invoices_s_history (id, entity_key, event, from_state, to_state, idempotency_key)
VALUES (fsm.uuid7(), NULL, 'send', 'draft', 'sent', 'req-null');
SELECT fsm.fire('hr_invoices', 1002, 'send', idempotency_key => 'req-null');
\echo :LAST_ERROR_SQLSTATE

-- history and changes without col read every bound column: each must be
-- readable.
SELECT fsm.create_machine('hr_pay', '{
  "states": {"unpaid": {"initial": true}, "paid": {}},
  "events": {"settle": {"from": "unpaid", "to": "paid"}}}') AS version;
CREATE TABLE hr_orders (id int PRIMARY KEY, shipping text, payment text);
SELECT fsm.attach('hr_orders', 'shipping', 'hr_doc') AS history;
SELECT fsm.attach('hr_orders', 'payment', 'hr_pay') AS history;
INSERT INTO hr_orders (id) VALUES (1);
SELECT fsm.fire('hr_orders', 1, 'settle', '{"card": "4111"}');
GRANT SELECT (id, shipping) ON hr_orders TO hr_intruder;
SET ROLE hr_intruder;
SELECT event, to_state FROM fsm.history('hr_orders', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT event, to_state FROM fsm.changes('hr_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT event, to_state FROM fsm.history('hr_orders', 1, col => 'shipping');
SELECT event, to_state FROM fsm.history('hr_orders', 1, col => 'payment');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A guard whose name holds a quoted dot is one name, looked up in the
-- table's schema, not a schema and a name resolved through search_path.
CREATE SCHEMA hr_app;
CREATE TABLE hr_app.tasks (id int PRIMARY KEY, s text);
CREATE FUNCTION hr_app."ok.check"(t hr_app.tasks, payload jsonb) RETURNS boolean
    LANGUAGE sql AS $$ SELECT true $$;
CREATE FUNCTION public."ok.check"(t hr_app.tasks, payload jsonb) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'planted function ran'; END $$;
SET search_path = hr_app, public;
SELECT fsm.create_machine('hr_task', '{
  "states": {"todo": {"initial": true}, "done": {}},
  "events": {"finish": {"from": "todo", "to": "done", "guard": "\"ok.check\""}}}') AS version;
RESET search_path;
SELECT fsm.attach('hr_app.tasks', 's', 'hr_task') AS history;
INSERT INTO hr_app.tasks VALUES (1);
SET search_path = public, hr_app;
SELECT fsm.fire('hr_app.tasks', 1, 'finish');
RESET search_path;

-- Enforcement that DDL cannot step around.
-- A partition attached to a bound table brings rows in: each must hold a
-- state, as at attach (23514, nothing attached).
CREATE TABLE hr_parcels_pk (id int PRIMARY KEY, s text) PARTITION BY RANGE (id);
CREATE TABLE hr_parcels_1 PARTITION OF hr_parcels_pk FOR VALUES FROM (0) TO (100);
SELECT fsm.attach('hr_parcels_pk', 's', 'hr_doc') AS history;
CREATE TABLE hr_parcels_2 (id int PRIMARY KEY, s text);
INSERT INTO hr_parcels_2 VALUES (100, 'draft'), (101, 'shipped'), (102, NULL);
ALTER TABLE hr_parcels_pk ATTACH PARTITION hr_parcels_2 FOR VALUES FROM (100) TO (200);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows_in_bound_table FROM hr_parcels_pk;
UPDATE hr_parcels_2 SET s = 'sent' WHERE id IN (101, 102);
ALTER TABLE hr_parcels_pk ATTACH PARTITION hr_parcels_2 FOR VALUES FROM (100) TO (200);
SELECT id, s FROM hr_parcels_pk ORDER BY id;
-- ... and from there on it is enforced.
UPDATE hr_parcels_pk SET s = 'draft' WHERE id = 101;
\echo :LAST_ERROR_SQLSTATE
-- A partition of a partition: its rows enter the bound table too.
CREATE TABLE hr_parcels_3 PARTITION OF hr_parcels_pk FOR VALUES FROM (200) TO (300) PARTITION BY RANGE (id);
CREATE TABLE hr_parcels_3a (id int PRIMARY KEY, s text);
INSERT INTO hr_parcels_3a VALUES (200, 'lost');
ALTER TABLE hr_parcels_3 ATTACH PARTITION hr_parcels_3a FOR VALUES FROM (200) TO (250);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows_in_bound_table FROM hr_parcels_pk WHERE id >= 200;

-- A foreign table cannot join a bound table's inheritance tree, and a
-- refused one does not block DDL on other tables afterwards.
CREATE FOREIGN DATA WRAPPER hr_fdw;
CREATE SERVER hr_server FOREIGN DATA WRAPPER hr_fdw;
CREATE FOREIGN TABLE hr_remote_invoices () INHERITS (hr_invoices) SERVER hr_server;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS children FROM pg_inherits WHERE inhparent = 'hr_invoices'::regclass;
CREATE TABLE hr_unrelated (id int);
ALTER TABLE hr_unrelated ADD COLUMN note text;
CREATE FOREIGN TABLE hr_remote_plain (id int NOT NULL, s text) SERVER hr_server;
ALTER FOREIGN TABLE hr_remote_plain INHERIT hr_invoices;
\echo :LAST_ERROR_SQLSTATE


-- A cancel is never rewritten: a statement timeout while create_machine
-- checks 999 timeouts is 57014, not a complaint about the definition.
SET statement_timeout = '20ms';
SELECT fsm.create_machine('hr_many_timers', jsonb_build_object(
  'states', (SELECT jsonb_object_agg('s' || g,
                     CASE WHEN g = 0 THEN '{"initial": true}'::jsonb ELSE '{}'::jsonb END
                     || jsonb_build_object('timeout', jsonb_build_object('after', '1 day', 'event', 'next')))
               FROM generate_series(0, 998) g) || '{"end": {"final": true}}',
  'events', '{"next": {"from": "*", "to": "end"}}'::jsonb));
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;

-- A refusal shows a row's key and state only to a role that may read them.
CREATE TABLE hr_safes (id int PRIMARY KEY, s text, combination text);
SELECT fsm.attach('hr_safes', 's', 'hr_doc') AS history;
INSERT INTO hr_safes VALUES (7), (8);
UPDATE hr_safes SET s = 'sent' WHERE id = 7;
GRANT UPDATE (s) ON hr_safes TO hr_intruder;
SET ROLE hr_intruder;
UPDATE hr_safes SET s = 'draft';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT SELECT (id) ON hr_safes TO hr_intruder;
SET ROLE hr_intruder;
UPDATE hr_safes SET s = 'draft' WHERE id = 7;
-- fire reads the row it moves: SELECT on the key and the state.
SELECT fsm.fire('hr_safes', 8, 'send');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT SELECT (s) ON hr_safes TO hr_intruder;
SET ROLE hr_intruder;
SELECT fsm.fire('hr_safes', 8, 'send');
UPDATE hr_safes SET s = 'draft' WHERE id = 7;
RESET ROLE;

-- Row level security: a refusal names no row, as PostgreSQL's own errors.
CREATE TABLE hr_tenants (id text PRIMARY KEY, tenant text, s text);
SELECT fsm.attach('hr_tenants', 's', 'hr_doc') AS history;
INSERT INTO hr_tenants VALUES ('acme-secret-42', 'acme');
UPDATE hr_tenants SET s = 'sent';
ALTER TABLE hr_tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY hr_see_own ON hr_tenants FOR SELECT USING (tenant = current_user);
CREATE POLICY hr_update_any ON hr_tenants FOR UPDATE USING (true);
GRANT SELECT, UPDATE ON hr_tenants TO hr_intruder;
SET ROLE hr_intruder;
UPDATE hr_tenants SET s = 'draft';
RESET ROLE;

-- The owner of a machine another role attached may replace it (attaching
-- trusts it), but its row check does not tell it that table's values.
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO hr_intruder', current_database()); END $$;
SET ROLE hr_intruder;
SELECT fsm.create_machine('hr_shared_m', '{
  "states": {"new": {"initial": true}, "vip": {}},
  "events": {"promote": {"from": "new", "to": "vip"}}}') AS version;
RESET ROLE;
SET ROLE hr_victim;
CREATE TABLE hr_shared.customers (id int PRIMARY KEY, s text, card text);
SELECT fsm.attach('hr_shared.customers', 's', 'hr_shared_m') AS history;
INSERT INTO hr_shared.customers VALUES (1, 'new', '4111');
SELECT fsm.fire('hr_shared.customers', 1, 'promote');
RESET ROLE;
SET ROLE hr_intruder;
SELECT fsm.create_machine('hr_shared_m', '{
  "states": {"new": {"initial": true}},
  "events": {}}', true);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT version FROM fsm.machines WHERE name = 'hr_shared_m';

-- History rows are written as the history's owner: its code (a trigger, a
-- CHECK) runs with search_path pinned, never through the writer's path.
CREATE ROLE hr_alice;
CREATE ROLE hr_bob;
CREATE SCHEMA hr_a AUTHORIZATION hr_alice;
CREATE SCHEMA hr_b AUTHORIZATION hr_bob;
SET ROLE hr_alice;
CREATE TABLE hr_a.orders (id int PRIMARY KEY, s text);
SELECT fsm.attach('hr_a.orders', 's', 'hr_doc') AS history;
CREATE TABLE hr_a.outbox (at timestamptz, who text);
CREATE FUNCTION hr_a.to_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hr_a.outbox VALUES (now(), current_user);
    RETURN NULL;
END $$;
CREATE TRIGGER outbox AFTER INSERT ON hr_a.orders_s_history FOR EACH ROW EXECUTE FUNCTION hr_a.to_outbox();
CREATE TABLE hr_a.items (id int PRIMARY KEY, s text);
SELECT fsm.attach('hr_a.items', 's', 'hr_doc') AS history;
CREATE FUNCTION hr_a.named(t text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RETURN length(t) > 0;
END $$;
ALTER TABLE hr_a.items_s_history ADD CONSTRAINT named CHECK (hr_a.named(to_state));
INSERT INTO hr_a.orders VALUES (1);
INSERT INTO hr_a.items VALUES (1);
GRANT USAGE ON SCHEMA hr_a TO hr_bob;
GRANT SELECT, UPDATE ON hr_a.orders, hr_a.items TO hr_bob;
RESET ROLE;
SET ROLE hr_bob;
CREATE FUNCTION hr_b.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'planted now() ran as %', current_user; END $$;
CREATE FUNCTION hr_b.length(text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'planted length() ran as %', current_user; END $$;
GRANT USAGE ON SCHEMA hr_b TO PUBLIC;
SET search_path = hr_b, pg_catalog;
UPDATE hr_a.orders SET s = 'sent' WHERE id = 1;
UPDATE hr_a.items SET s = 'sent' WHERE id = 1;
RESET search_path;
RESET ROLE;
-- ... and a domain's CHECK on a history column.
SET ROLE hr_alice;
CREATE TABLE hr_a.notes (id int PRIMARY KEY, s text);
SELECT fsm.attach('hr_a.notes', 's', 'hr_doc') AS history;
CREATE FUNCTION hr_a.fine(x text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RETURN length(x) >= 0;
END $$;
CREATE DOMAIN hr_a.checked_text AS text CHECK (hr_a.fine(VALUE));
ALTER TABLE hr_a.notes_s_history ALTER COLUMN actor TYPE hr_a.checked_text;
INSERT INTO hr_a.notes VALUES (1);
GRANT SELECT, UPDATE ON hr_a.notes TO hr_bob;
RESET ROLE;
SET ROLE hr_bob;
SET search_path = hr_b, pg_catalog;
SET fsm.actor = 'bob';
UPDATE hr_a.notes SET s = 'sent' WHERE id = 1;
RESET fsm.actor;
RESET search_path;
RESET ROLE;
SELECT entity_key, event, actor FROM hr_a.notes_s_history WHERE event IS NOT NULL;
SELECT who FROM hr_a.outbox;
SELECT entity_key, event, db_user FROM hr_a.items_s_history WHERE event IS NOT NULL;

-- ATTACH PARTITION is checked in a session that never loaded fsm too.
CREATE TABLE hr_parcels_4 (id int PRIMARY KEY, s text);
INSERT INTO hr_parcels_4 VALUES (300, 'HACKED');
\c
\set VERBOSITY terse
ALTER TABLE hr_parcels_pk ATTACH PARTITION hr_parcels_4 FOR VALUES FROM (300) TO (400);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows_in_bound_table FROM hr_parcels_pk WHERE id >= 300;
-- Inside a subtransaction, and for a partition of a partition.
CREATE TABLE hr_parcels_5 (id int PRIMARY KEY, s text);
INSERT INTO hr_parcels_5 VALUES (260, 'HACKED');
BEGIN;
SAVEPOINT s;
ALTER TABLE hr_parcels_3 ATTACH PARTITION hr_parcels_5 FOR VALUES FROM (250) TO (300);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- Nobody calls the check directly.
SET ROLE hr_intruder;
SELECT fsm.check_new_partitions('hr_parcels_pk');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A row of a partitioned bound table cannot change its key: it would move
-- between partitions as DELETE + INSERT, past every check (a final state
-- reset to the initial one, protect included).
SELECT fsm.create_machine('hr_vault', '{
  "states": {"open": {"initial": true}, "sealed": {"final": true}},
  "events": {"seal": {"from": "open", "to": "sealed"}}}') AS version;
CREATE TABLE hr_vaults (id int PRIMARY KEY, s text) PARTITION BY RANGE (id);
CREATE TABLE hr_vaults_1 PARTITION OF hr_vaults FOR VALUES FROM (0) TO (100);
CREATE TABLE hr_vaults_2 PARTITION OF hr_vaults FOR VALUES FROM (100) TO (200);
SELECT fsm.attach('hr_vaults', 's', 'hr_vault', protect => true) AS history;
INSERT INTO hr_vaults VALUES (1);
SELECT fsm.fire('hr_vaults', 1, 'seal');
GRANT SELECT, UPDATE ON hr_vaults TO hr_intruder;
SET ROLE hr_intruder;
UPDATE hr_vaults SET id = 101, s = 'open' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE hr_vaults SET id = 2 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT id, s FROM hr_vaults;
-- An UPDATE that names the key with its own value is no change.
UPDATE hr_vaults SET id = 1 WHERE id = 1;
SELECT event, to_state FROM fsm.history('hr_vaults', 1);
