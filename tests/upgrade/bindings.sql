-- The same machines and bindings, made on each release (before the
-- upgrade) or on a fresh install of the current version. Nothing here may
-- use what 0.1.0 lacks.
DO $$ BEGIN CREATE ROLE fsm_upgrade_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
SELECT fsm.create_machine('order', '{
  "states": {"created": {"initial": true}, "paid": {}, "shipped": {"final": true}, "cancelled": {"final": true}},
  "events": {"pay": {"from": "created", "to": "paid"}, "ship": {"from": "paid", "to": "shipped"},
             "cancel": {"from": ["created", "paid"], "to": "cancelled"}}}');
SELECT fsm.create_machine('payment', '{
  "states": {"due": {"initial": true}, "settled": {"final": true}},
  "events": {"settle": {"from": "due", "to": "settled"}}}');
CREATE TABLE orders (id bigint PRIMARY KEY, status text, payment text, note text);
GRANT SELECT ON orders TO fsm_upgrade_reader;
SELECT fsm.attach('orders', 'status', 'order');
SELECT fsm.attach('orders', 'payment', 'payment', protect => true);
CREATE TABLE parcels (code text PRIMARY KEY, state varchar(20));
SELECT fsm.attach('parcels', 'state', 'order', notify => 'parcels');
INSERT INTO orders (id) SELECT generate_series(1, 5);
INSERT INTO parcels (code) VALUES ('P-1'), ('P-2');
UPDATE orders SET status = 'paid' WHERE id <= 3;
UPDATE orders SET status = 'shipped' WHERE id = 1;
SELECT fsm.fire('orders', 4, 'cancel');
SELECT fsm.fire('orders', 2, 'settle');
SELECT fsm.fire('parcels', 'P-1'::text, 'pay');
