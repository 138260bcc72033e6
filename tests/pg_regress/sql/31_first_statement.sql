-- The statement that loads fsm in a backend runs its executor before
-- fsm's hooks exist: its history rows wait for the next statement or the
-- commit. They must be visible to what follows in the transaction, and an
-- error appending them (a history trigger's own) must leave as raised.
-- Each \c below starts a backend where fsm is not loaded yet.
\set VERBOSITY terse
SELECT fsm.create_machine('fs_ship', '{
  "states": {"new": {"initial": true},
             "shipped": {"timeout": {"after": "1 hour", "event": "lose"}},
             "lost": {"final": true}},
  "events": {"ship": {"from": "new", "to": "shipped"}, "lose": {"from": "shipped", "to": "lost"}}}') AS version;
CREATE TABLE fs_orders (id int PRIMARY KEY, s text);
SELECT fsm.attach('fs_orders', 's', 'fs_ship') AS history;
INSERT INTO fs_orders VALUES (1), (2), (3);

\c
\set VERBOSITY terse
BEGIN;
UPDATE fs_orders SET s = 'shipped' WHERE id = 1;
SELECT entity_key, state, last_event FROM fsm.current_states('fs_orders', ARRAY[1]);
SELECT event, to_state FROM fsm.history('fs_orders', 1);
SELECT entity_key, state, event FROM fsm.timers WHERE tbl OPERATOR(pg_catalog.=) 'fs_orders'::regclass;
COMMIT;

-- A history table's own trigger refusing at commit: its SQLSTATE.
CREATE FUNCTION fs_no_loss() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event = 'lose' THEN
        RAISE EXCEPTION 'history says no' USING ERRCODE = 'AB123';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER no_loss BEFORE INSERT ON fs_orders_s_history FOR EACH ROW EXECUTE FUNCTION public.fs_no_loss();
\c
\set VERBOSITY terse
UPDATE fs_orders SET s = 'lost' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT id, s FROM fs_orders WHERE id = 1;
DROP TRIGGER no_loss ON fs_orders_s_history;

-- Held rows of a table dropped in the same transaction: appended first.
\c
\set VERBOSITY terse
BEGIN;
UPDATE fs_orders SET s = 'shipped' WHERE id = 2;
SELECT fsm.detach('fs_orders', 's');
DROP TABLE fs_orders, fs_orders_s_history;
ROLLBACK;
SELECT entity_key, event FROM fs_orders_s_history WHERE event IS NOT NULL ORDER BY id;

-- One table's timers failing as a whole (its owner revoked its own
-- grant) is a WARNING for tick and for fsm.timers; the others go on.
SELECT fsm.create_machine('fs_quick', '{
  "states": {"on": {"initial": true, "timeout": {"after": "1 millisecond", "event": "off"}},
             "off": {"final": true}},
  "events": {"off": {"from": "on", "to": "off"}}}') AS version;
CREATE ROLE fs_mallory;
CREATE ROLE fs_ticker;
CREATE SCHEMA fs AUTHORIZATION fs_mallory;
GRANT USAGE ON SCHEMA fs TO fs_ticker;
SET ROLE fs_mallory;
CREATE TABLE fs.a (id int PRIMARY KEY, s text);
CREATE TABLE fs.b (id int PRIMARY KEY, s text);
SELECT fsm.attach('fs.a', 's', 'fs_quick') IS NOT NULL AS attached;
SELECT fsm.attach('fs.b', 's', 'fs_quick') IS NOT NULL AS attached;
INSERT INTO fs.a VALUES (1);
INSERT INTO fs.b VALUES (1);
GRANT SELECT, UPDATE ON fs.a, fs.b TO fs_ticker;
REVOKE SELECT ON fs.a FROM fs_mallory;
RESET ROLE;
SELECT pg_sleep(0.01);
SET ROLE fs_ticker;
SELECT tbl, entity_key FROM fsm.timers WHERE tbl::text LIKE 'fs.%' ORDER BY 1;
SELECT fsm.tick();
RESET ROLE;
SELECT id, s FROM fs.b;
