-- Transitions: the trigger on INSERT and UPDATE, and fsm.fire, refuse the
-- same things with the same SQLSTATEs.
\set SHOW_CONTEXT never
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id bigint PRIMARY KEY, status text, tracking text, note text);
CREATE FUNCTION shop.has_tracking_number(o shop.orders, payload jsonb) RETURNS boolean
    LANGUAGE sql AS $$ SELECT o.tracking IS NOT NULL $$;
CREATE TABLE shop.outbox (order_id bigint, payload jsonb);
CREATE FUNCTION shop.log_cancel(o shop.orders, payload jsonb) RETURNS void
    LANGUAGE sql AS $$ INSERT INTO shop.outbox VALUES (o.id, payload) $$;
CREATE ROLE support_agent NOLOGIN;
CREATE ROLE clerk NOLOGIN;
GRANT USAGE ON SCHEMA shop TO support_agent, clerk;
GRANT SELECT, INSERT, UPDATE ON shop.orders TO support_agent, clerk;
GRANT INSERT ON shop.outbox TO support_agent, clerk;

SELECT fsm.create_machine('shop_order', '{
  "states": {
    "created": {"initial": true}, "paid": {}, "shipped": {},
    "delivered": {"final": true}, "cancelled": {"final": true}
  },
  "events": {
    "pay":     {"from": "created", "to": "paid",
                "payload": {"type": "object", "required": ["amount"],
                            "properties": {"amount": {"type": "number", "minimum": 1}},
                            "additionalProperties": false}},
    "ship":    {"from": "paid", "to": "shipped", "guard": "shop.has_tracking_number"},
    "deliver": {"from": "shipped", "to": "delivered"},
    "cancel":  {"from": ["created", "paid"], "to": "cancelled", "roles": ["support_agent"],
                "action": "shop.log_cancel"},
    "refund":  {"from": "paid", "to": "cancelled"},
    "review":  {"from": "paid", "to": ["paid", "cancelled"]}
  }
}');
SELECT fsm.attach('shop.orders', 'status', 'shop_order');

-- INSERT: NULL becomes the initial state; another state is refused.
INSERT INTO shop.orders (id) VALUES (1), (2), (3), (4);
SELECT id, status FROM shop.orders ORDER BY id;
INSERT INTO shop.orders (id, status) VALUES (5, 'paid');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO shop.orders (id, status) VALUES (5, 'created');

-- UPDATE along a declared event succeeds; anything else fails whole.
UPDATE shop.orders SET status = 'shipped' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE shop.orders SET status = 'bogus' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE shop.orders SET status = NULL WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
-- A set-based UPDATE is checked row by row: one bad row fails all.
UPDATE shop.orders SET status = CASE id WHEN 1 THEN 'cancelled' ELSE 'shipped' END WHERE id IN (1, 2);
\echo :LAST_ERROR_SQLSTATE
SELECT id, status FROM shop.orders WHERE id IN (1, 2) ORDER BY id;

-- The payload schema: a plain UPDATE carries no payload, so "pay" needs fire.
UPDATE shop.orders SET status = 'paid' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('shop.orders', 1, 'pay', '{"amount": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('shop.orders', 1, 'pay', '{"amount": 10, "tip": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('shop.orders', 1, 'pay', '{"amount": 10}');
SELECT fsm.fire('shop.orders', 2, 'pay', '{"amount": 20}');
SELECT fsm.fire('shop.orders', 3, 'pay', '{"amount": 30}');

-- Guards: refused while the guard says no (23514), by UPDATE or fire.
UPDATE shop.orders SET status = 'shipped' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('shop.orders', 1, 'ship');
\echo :LAST_ERROR_SQLSTATE
-- The guard sees the row being written: setting the tracking number in the
-- same UPDATE passes it.
UPDATE shop.orders SET status = 'shipped', tracking = 'TR-1' WHERE id = 1;
UPDATE shop.orders SET tracking = 'TR-2' WHERE id = 2;
SELECT fsm.fire('shop.orders', 2, 'ship');

-- Several events lead from paid to cancelled: fsm.event names the one.
UPDATE shop.orders SET status = 'cancelled' WHERE id = 3;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL fsm.event = 'refund';
UPDATE shop.orders SET status = 'cancelled' WHERE id = 3;
COMMIT;
SELECT status FROM shop.orders WHERE id = 3;

-- Roles: cancel needs membership in support_agent (42501).
SET ROLE clerk;
SELECT fsm.fire('shop.orders', 4, 'cancel');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT support_agent TO clerk;
SET ROLE clerk;
SELECT fsm.fire('shop.orders', 4, 'cancel', '{"reason": "changed mind"}');
RESET ROLE;
-- Its action ran in the same transaction.
SELECT * FROM shop.outbox;

-- fire: unknown event, event not allowed now, missing key, NULL key.
SELECT fsm.fire('shop.orders', 5, 'fly');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('shop.orders', 5, 'deliver');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('shop.orders', 99, 'pay', '{"amount": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('shop.orders', NULL::bigint, 'pay');
\echo :LAST_ERROR_SQLSTATE
-- expect: an optimistic check of the current state (40001).
SELECT fsm.fire('shop.orders', 5, 'pay', '{"amount": 5}', expect => 'paid');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('shop.orders', 5, 'pay', '{"amount": 5}', expect => 'created');
-- Dynamic targets: "review" needs "to", which must be one of its targets.
SELECT fsm.fire('shop.orders', 5, 'review');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('shop.orders', 5, 'review', "to" => 'shipped');
\echo :LAST_ERROR_SQLSTATE
-- A self-transition is recorded although the column does not change.
SELECT fsm.fire('shop.orders', 5, 'review', "to" => 'paid');
-- The key may be any type that casts to the key's type.
SELECT fsm.fire('shop.orders', '5'::text, 'review', "to" => 'paid');

-- A rolled-back transition leaves neither state nor history behind.
BEGIN;
SELECT fsm.fire('shop.orders', 5, 'review', "to" => 'cancelled');
ROLLBACK;
SELECT status FROM shop.orders WHERE id = 5;
BEGIN;
SAVEPOINT s;
UPDATE shop.orders SET status = 'cancelled' WHERE id = 5;
ROLLBACK TO SAVEPOINT s;
COMMIT;

-- protect: only fire may change the column.
SELECT fsm.detach('shop.orders', 'status', drop_history => true);
SELECT fsm.attach('shop.orders', 'status', 'shop_order', protect => true) IS NOT NULL AS attached;
UPDATE shop.orders SET status = 'cancelled' WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
-- ... whatever value it writes, a state or not.
UPDATE shop.orders SET status = 'no such state' WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.fire('shop.orders', 5, 'refund');

-- UPDATEs that leave the column alone are not checked at all.
UPDATE shop.orders SET note = 'ok';
SELECT id, status, note FROM shop.orders ORDER BY id;
