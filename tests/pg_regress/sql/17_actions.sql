-- Actions run after the row has changed: they see the new state and may
-- update their own row. With on_error, fire recovers from an action's
-- error: the action's effects and the change roll back to a savepoint, the
-- entity moves to the on_error state, the history row records the error,
-- and fire returns that state with a WARNING.
\set SHOW_CONTEXT never
CREATE SCHEMA pay;
CREATE TABLE pay.payments (id int PRIMARY KEY, status text, note text,
                           attempts int NOT NULL DEFAULT 0 CHECK (attempts < 3));
CREATE TABLE pay.outbox (payment int, message text);
-- Writes its own row (another column) and an outbox row.
CREATE FUNCTION pay.capture(r pay.payments, p jsonb) RETURNS void LANGUAGE sql AS $$
  UPDATE pay.payments SET note = 'captured in ' || r.status WHERE id = r.id;
  INSERT INTO pay.outbox VALUES (r.id, 'captured ' || coalesce(p->>'amount', '?'));
$$;
-- Does the same, then fails: nothing of what it did may remain.
CREATE FUNCTION pay.decline(r pay.payments, p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE pay.payments SET note = 'half done' WHERE id = r.id;
  INSERT INTO pay.outbox VALUES (r.id, 'should not be here');
  RAISE EXCEPTION 'card % declined', r.id USING ERRCODE = 'P0001';
END $$;
-- Fails only because of the table's own CHECK: not the action's error.
CREATE FUNCTION pay.retry(r pay.payments, p jsonb) RETURNS void LANGUAGE sql AS $$
  UPDATE pay.payments SET attempts = attempts + 1 WHERE id = r.id;
$$;
SELECT fsm.create_machine('card_payment', '{
  "states": {"new": {"initial": true}, "captured": {}, "failed": {},
             "settled": {"final": true}},
  "events": {
    "capture": {"from": "new", "to": "captured", "action": "pay.capture"},
    "charge":  {"from": "new", "to": "captured", "action": "pay.decline", "on_error": "failed"},
    "strict":  {"from": "new", "to": "captured", "action": "pay.decline"},
    "recheck": {"from": "failed", "to": "failed", "action": "pay.decline", "on_error": "failed"},
    "retry":   {"from": "failed", "to": "new", "action": "pay.retry", "on_error": "settled"},
    "settle":  {"from": "captured", "to": "settled"}}}');
SELECT fsm.attach('pay.payments', 'status', 'card_payment') IS NOT NULL AS attached;
INSERT INTO pay.payments (id) VALUES (1), (2), (3), (4);

-- The action sees the new state and updates its own row, through fire and
-- through a plain UPDATE alike.
SELECT fsm.fire('pay.payments', 1, 'capture', '{"amount": 10}');
BEGIN;
SET LOCAL fsm.event = 'capture';
UPDATE pay.payments SET status = 'captured' WHERE id = 2;
COMMIT;
SELECT id, status, note FROM pay.payments WHERE id IN (1, 2) ORDER BY id;
SELECT * FROM pay.outbox ORDER BY payment;

-- on_error: the entity moves to "failed" instead; the action's UPDATE and
-- INSERT are gone; the history row carries the error and the payload as
-- given (the number is not rounded).
SELECT fsm.fire('pay.payments', 3, 'charge', '{"amount": 12.000000000000000000001}');
SELECT id, status, note FROM pay.payments WHERE id = 3;
SELECT count(*) AS outbox_rows_for_3 FROM pay.outbox WHERE payment = 3;
SELECT event, from_state, to_state, payload FROM pay.payments_status_history
 WHERE entity_key = 3 ORDER BY id;
-- A self-transition recovers the same way: one history row, the error's.
SELECT fsm.fire('pay.payments', 3, 'recheck');
SELECT event, from_state, to_state, payload->'error' AS error FROM pay.payments_status_history
 WHERE entity_key = 3 ORDER BY id;

-- Without on_error, or through a plain UPDATE, the action's error fails
-- the statement and nothing changes.
SELECT fsm.fire('pay.payments', 4, 'strict');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL fsm.event = 'charge';
UPDATE pay.payments SET status = 'captured' WHERE id = 4;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT status, note FROM pay.payments WHERE id = 4;
SELECT count(*) AS outbox_rows_for_4 FROM pay.outbox WHERE payment = 4;

-- An error that is not the action's (here another trigger's, raised by
-- fire's own UPDATE) is not recovered from: on_error covers the action.
CREATE FUNCTION pay.no_settling() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'new' AND NEW.note = 'frozen' THEN
    RAISE EXCEPTION 'payment % is frozen', NEW.id USING ERRCODE = '55P03';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER no_settling BEFORE UPDATE ON pay.payments
  FOR EACH ROW EXECUTE FUNCTION pay.no_settling();
UPDATE pay.payments SET note = 'frozen' WHERE id = 3;
SELECT fsm.fire('pay.payments', 3, 'retry');
\echo :LAST_ERROR_SQLSTATE
SELECT status, attempts FROM pay.payments WHERE id = 3;
UPDATE pay.payments SET note = NULL, attempts = 2 WHERE id = 3;
-- The action's own error (its UPDATE breaks the table's CHECK) is.
SELECT fsm.fire('pay.payments', 3, 'retry');
SELECT status, attempts FROM pay.payments WHERE id = 3;
SELECT to_state, payload->'error'->>'sqlstate' AS sqlstate FROM pay.payments_status_history
 WHERE entity_key = 3 ORDER BY id DESC LIMIT 1;

-- Inside the caller's own savepoints and exception blocks, recovery nests:
-- a later rollback of the caller's block removes the recovered move too.
INSERT INTO pay.payments (id) VALUES (5);
BEGIN;
SAVEPOINT before_charge;
SELECT fsm.fire('pay.payments', 5, 'charge');
ROLLBACK TO SAVEPOINT before_charge;
SELECT status FROM pay.payments WHERE id = 5;
DO $$
BEGIN
  PERFORM fsm.fire('pay.payments', 5, 'charge');
  RAISE EXCEPTION 'undo' USING ERRCODE = 'P0003';
EXCEPTION WHEN SQLSTATE 'P0003' THEN
  RAISE NOTICE 'rolled back: %', (SELECT status FROM pay.payments WHERE id = 5);
END $$;
SELECT fsm.fire('pay.payments', 5, 'charge');
COMMIT;
SELECT status FROM pay.payments WHERE id = 5;
SELECT event, to_state, payload->'error'->>'message' AS message
  FROM pay.payments_status_history WHERE entity_key = 5 ORDER BY id;

-- With an idempotency key, the retry returns the on_error state.
INSERT INTO pay.payments (id) VALUES (6);
SELECT fsm.fire('pay.payments', 6, 'charge', idempotency_key => 'charge-6');
SELECT fsm.fire('pay.payments', 6, 'charge', idempotency_key => 'charge-6');
SELECT count(*) AS rows_for_6 FROM pay.payments_status_history WHERE entity_key = 6;
