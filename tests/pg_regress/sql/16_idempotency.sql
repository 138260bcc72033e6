-- Idempotency keys: a retried request never moves twice. The key is stored
-- on the history row; firing again with it for the same entity and event
-- returns the state that request reached and changes nothing.
\set SHOW_CONTEXT never
SELECT fsm.create_machine('invoice', '{
  "states": {"open": {"initial": true}, "paid": {}, "refunded": {"final": true}},
  "events": {"pay": {"from": "open", "to": "paid"}, "refund": {"from": "paid", "to": "refunded"},
             "remind": {"from": "open", "to": "open"}}}');
CREATE TABLE invoices (id int PRIMARY KEY, status text);
SELECT fsm.attach('invoices', 'status', 'invoice') IS NOT NULL AS attached;
INSERT INTO invoices VALUES (1), (2), (3);

SELECT fsm.fire('invoices', 1, 'pay', idempotency_key => 'pay-1');
-- The retry: same answer, nothing moved, nothing recorded.
SELECT fsm.fire('invoices', 1, 'pay', idempotency_key => 'pay-1');
SELECT event, to_state, idempotency_key FROM invoices_status_history WHERE entity_key = 1 ORDER BY id;
-- Still the state that request reached, after the entity moved on.
SELECT fsm.fire('invoices', 1, 'refund', idempotency_key => 'refund-1');
SELECT fsm.fire('invoices', 1, 'pay', idempotency_key => 'pay-1');
SELECT status FROM invoices WHERE id = 1;
-- A self-transition is recorded with its key too.
SELECT fsm.fire('invoices', 2, 'remind', idempotency_key => 'remind-2');
SELECT fsm.fire('invoices', 2, 'remind', idempotency_key => 'remind-2');
SELECT count(*) AS reminders FROM invoices_status_history WHERE entity_key = 2 AND event = 'remind';
-- Without a key, or with a new one, each call is a new request.
SELECT fsm.fire('invoices', 2, 'remind');
SELECT fsm.fire('invoices', 2, 'remind', idempotency_key => 'remind-2b');
SELECT count(*) AS reminders FROM invoices_status_history WHERE entity_key = 2 AND event = 'remind';

-- The same key for another entity or another event: 22023, nothing changes.
SELECT fsm.fire('invoices', 3, 'pay', idempotency_key => 'pay-1');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('invoices', 1, 'refund', idempotency_key => 'pay-1');
\echo :LAST_ERROR_SQLSTATE
SELECT status FROM invoices WHERE id = 3;
-- A refused request records no key: fixed, it may use it.
SELECT fsm.fire('invoices', 3, 'refund', idempotency_key => 'refund-3');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('invoices', 3, 'pay', idempotency_key => 'refund-3');
-- Keys are 1 to 255 bytes.
SELECT fsm.fire('invoices', 3, 'refund', idempotency_key => '');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('invoices', 3, 'refund', idempotency_key => repeat('k', 256));
\echo :LAST_ERROR_SQLSTATE
-- A rolled-back request leaves no key behind.
BEGIN;
SELECT fsm.fire('invoices', 3, 'refund', idempotency_key => 'refund-3b');
ROLLBACK;
SELECT fsm.fire('invoices', 3, 'refund', idempotency_key => 'refund-3b');
SELECT count(*) AS refunds FROM invoices_status_history WHERE entity_key = 3 AND event = 'refund';
-- Keys are unique per binding.
SELECT indexdef ~ 'UNIQUE' AND indexdef ~ 'idempotency_key' AS unique_index
  FROM pg_indexes WHERE tablename = 'invoices_status_history' AND indexdef ~ 'idempotency_key';
