-- History is exact: one history row for each row change that was written,
-- none for the rest, whatever path wrote it (API.md §2).
\set SHOW_CONTEXT never
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS fsm;
SELECT fsm.create_machine('payment', '{
  "states": {"created": {"initial": true}, "paid": {}, "refunded": {"final": true}},
  "events": {"pay": {"from": "created", "to": "paid"},
             "refund": {"from": "paid", "to": "refunded"}}
}') AS version;
CREATE TABLE payments (id int PRIMARY KEY, note text, status text);
SELECT fsm.attach('payments', 'status', 'payment') AS history_table;
CREATE VIEW trail AS
  SELECT entity_key AS id, event, from_state, to_state FROM payments_status_history ORDER BY id;
INSERT INTO payments (id) VALUES (1);

-- ON CONFLICT DO NOTHING on an existing key writes nothing: no history.
INSERT INTO payments (id) VALUES (1) ON CONFLICT DO NOTHING;
SELECT * FROM trail;

-- ON CONFLICT DO UPDATE that moves the state: the move, and no initial
-- row for the row that was not inserted.
INSERT INTO payments (id, status) VALUES (1, 'paid')
  ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status;
SELECT * FROM trail;
-- ... that leaves the state alone: nothing.
INSERT INTO payments (id, note) VALUES (1, 'again')
  ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note;
-- ... on a new key: the INSERT's row only.
INSERT INTO payments (id) VALUES (2) ON CONFLICT (id) DO UPDATE SET note = 'never';
-- ... with an undeclared move: refused, nothing written.
INSERT INTO payments (id, status) VALUES (1, 'created')
  ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM trail;
SELECT id, note, status FROM payments ORDER BY id;

-- A later BEFORE trigger that skips the row: no row, no history.
CREATE FUNCTION skip_vetoed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.note = 'veto' THEN RETURN NULL; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER zzz_skip BEFORE INSERT OR UPDATE ON payments FOR EACH ROW EXECUTE FUNCTION skip_vetoed();
INSERT INTO payments (id, note) VALUES (3, 'veto');
UPDATE payments SET status = 'refunded', note = 'veto' WHERE id = 1;
SELECT count(*) AS rows_3 FROM payments WHERE id = 3;
SELECT * FROM trail;
DROP TRIGGER zzz_skip ON payments;

-- A user BEFORE UPDATE trigger that sets the state when the SET list
-- omits it: checked and recorded like any other change.
CREATE FUNCTION pay_on_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.note = 'pay' THEN NEW.status := 'paid'; END IF;
  IF NEW.note = 'rewind' THEN NEW.status := 'created'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER a_pay_on_note BEFORE UPDATE ON payments FOR EACH ROW EXECUTE FUNCTION pay_on_note();
UPDATE payments SET note = 'pay' WHERE id = 2;
UPDATE payments SET note = 'rewind' WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE
SELECT id, note, status FROM payments WHERE id = 2;
SELECT * FROM trail WHERE id = 2;
DROP TRIGGER a_pay_on_note ON payments;

-- Savepoints: a released savepoint's rows survive a later rollback at the
-- same level; a rolled-back one's rows are gone with its changes.
INSERT INTO payments (id) SELECT g FROM generate_series(10, 13) g;
BEGIN;
SAVEPOINT a;
UPDATE payments SET status = 'paid' WHERE id = 10;
RELEASE SAVEPOINT a;
SAVEPOINT b;
UPDATE payments SET status = 'paid' WHERE id = 11;
ROLLBACK TO SAVEPOINT b;
SAVEPOINT c;
SAVEPOINT d;
UPDATE payments SET status = 'paid' WHERE id = 12;
RELEASE SAVEPOINT d;
ROLLBACK TO SAVEPOINT c;
COMMIT;
SELECT id, status FROM payments WHERE id BETWEEN 10 AND 13 ORDER BY id;
SELECT * FROM trail WHERE id BETWEEN 10 AND 13 AND event IS NOT NULL;

-- An error caught inside a function (a subtransaction) undoes its rows'
-- history with them.
DO $$
BEGIN
  BEGIN
    UPDATE payments SET status = 'paid' WHERE id = 13;
    RAISE EXCEPTION 'changed my mind';
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
END $$;
SELECT * FROM trail WHERE id = 13 AND event IS NOT NULL;

-- The history of a statement is there for the next statement of the
-- same transaction.
BEGIN;
UPDATE payments SET status = 'paid' WHERE id = 13;
SELECT event, to_state FROM fsm.history('payments', 13) ORDER BY id;
COMMIT;

-- COPY and MERGE are rows written like any other.
COPY payments (id) FROM STDIN;
20
21
\.
MERGE INTO payments p USING (VALUES (20, 'paid'), (22, NULL)) AS v(id, status) ON p.id = v.id
  WHEN MATCHED THEN UPDATE SET status = v.status
  WHEN NOT MATCHED THEN INSERT (id, status) VALUES (v.id, v.status);
SELECT * FROM trail WHERE id >= 20;

-- A statement nested in another (a trigger's UPDATE of another bound row).
CREATE FUNCTION refund_neighbour() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE payments SET status = 'paid' WHERE id = NEW.id + 1 AND status = 'created';
  RETURN NULL;
END $$;
CREATE TRIGGER neighbour AFTER UPDATE OF note ON payments FOR EACH ROW EXECUTE FUNCTION refund_neighbour();
UPDATE payments SET note = 'poke' WHERE id = 20;
DROP TRIGGER neighbour ON payments;
SELECT * FROM trail WHERE id = 21;

-- Two-phase commit: the history is written before PREPARE, with the rows.
BEGIN;
UPDATE payments SET status = 'paid' WHERE id = 22;
PREPARE TRANSACTION 'fsm_2pc';
COMMIT PREPARED 'fsm_2pc';
SELECT * FROM trail WHERE id = 22;

-- Every history row matches a written change: the chain of each entity
-- replays to its current state.
SELECT p.id, p.status, (SELECT h.to_state FROM payments_status_history h
                         WHERE h.entity_key = p.id ORDER BY h.id DESC LIMIT 1) AS last_recorded
  FROM payments p
 WHERE p.status IS DISTINCT FROM (SELECT h.to_state FROM payments_status_history h
                                   WHERE h.entity_key = p.id ORDER BY h.id DESC LIMIT 1);
SELECT count(*) AS broken_links FROM (
  SELECT from_state, lag(to_state) OVER (PARTITION BY entity_key ORDER BY id) AS previous
    FROM payments_status_history) c
 WHERE from_state IS DISTINCT FROM previous;

-- Partitioned tables are attached as a whole: present and future
-- partitions, written through the parent or directly, with partitions
-- whose column order differs from the parent's.
CREATE TABLE ledger (id int PRIMARY KEY, status text, amount int) PARTITION BY RANGE (id);
CREATE TABLE ledger_low PARTITION OF ledger FOR VALUES FROM (0) TO (100);
CREATE FUNCTION big_enough(l ledger, p jsonb) RETURNS boolean LANGUAGE sql AS $$ SELECT l.amount >= 10 $$;
SELECT fsm.create_machine('ledger', '{
  "states": {"created": {"initial": true}, "paid": {}, "refunded": {"final": true}},
  "events": {"pay": {"from": "created", "to": "paid", "guard": "big_enough"},
             "refund": {"from": "paid", "to": "refunded"}}
}') AS version;
SELECT fsm.attach('ledger', 'status', 'ledger') AS history_table;
CREATE TABLE ledger_high (amount int, id int NOT NULL, status text);
ALTER TABLE ledger_high DROP COLUMN amount;
ALTER TABLE ledger_high ADD COLUMN amount int;
ALTER TABLE ledger ATTACH PARTITION ledger_high FOR VALUES FROM (100) TO (200);
INSERT INTO ledger (id, amount) VALUES (1, 5), (2, 50), (101, 50), (102, 5);
UPDATE ledger SET status = 'paid' WHERE amount >= 10;
UPDATE ledger_high SET status = 'refunded' WHERE id = 101;
UPDATE ledger SET status = 'paid' WHERE id = 102;
\echo :LAST_ERROR_SQLSTATE
UPDATE ledger_low SET status = 'refunded' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('ledger', 2, 'refund');
SELECT fsm.fire('ledger', 1, 'pay');
\echo :LAST_ERROR_SQLSTATE
SELECT entity_key, event, from_state, to_state FROM ledger_status_history ORDER BY id;
CREATE TABLE ledger_later PARTITION OF ledger FOR VALUES FROM (200) TO (300);
INSERT INTO ledger (id, amount) VALUES (200, 20);
UPDATE ledger_later SET status = 'paid';
SELECT entity_key, event, to_state FROM ledger_status_history WHERE entity_key >= 200 ORDER BY id;
SELECT entity_key, state, last_event FROM fsm.current_states('ledger', ARRAY[1, 2, 101, 102, 200]);
-- One partition alone is refused: its parent's binding covers it.
SELECT fsm.attach('ledger_low', 'amount', 'ledger');
\echo :LAST_ERROR_SQLSTATE

-- Inheritance is refused, before and after attaching.
CREATE TABLE animals (id int PRIMARY KEY, status text);
CREATE TABLE dogs () INHERITS (animals);
SELECT fsm.attach('animals', 'status', 'payment');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.attach('dogs', 'status', 'payment');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE cats (id int PRIMARY KEY, status text);
SELECT fsm.attach('cats', 'status', 'payment') AS history_table;
CREATE TABLE kittens () INHERITS (cats);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE lions (id int PRIMARY KEY, status text);
ALTER TABLE cats INHERIT lions;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS inheritors FROM pg_inherits WHERE inhparent IN ('cats'::regclass, 'lions'::regclass);

-- A varchar column must hold every state name: the initial state is
-- written past PostgreSQL's own length check.
CREATE TABLE short (id int PRIMARY KEY, status varchar(3));
SELECT fsm.attach('short', 'status', 'payment');
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE short ALTER COLUMN status TYPE varchar(8);
SELECT fsm.attach('short', 'status', 'payment') AS history_table;
INSERT INTO short VALUES (1);
SELECT status FROM short;

-- Held history rows are bounded: a 30,000-row UPDATE with text keys
-- appends them in batches, and the memory that held their keys is emptied
-- as soon as nothing is held (it is not kept until commit).
CREATE TABLE slips (code text PRIMARY KEY, status text);
SELECT fsm.attach('slips', 'status', 'payment') AS history_table;
INSERT INTO slips (code) SELECT 'slip-' || lpad(g::text, 40, '0') FROM generate_series(1, 30000) g;
BEGIN;
UPDATE slips SET status = 'paid';
SELECT count(*) AS moves FROM slips_status_history WHERE event = 'pay';
SELECT name, total_bytes <= 65536 AS small FROM pg_backend_memory_contexts
 WHERE name = 'fsm held history keys';
COMMIT;
