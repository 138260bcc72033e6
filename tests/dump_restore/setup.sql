-- The source database of tests/dump_restore/run.sh: machines (one replaced,
-- one owned by another role), a plain binding, two machines on one table
-- (one protected), a partitioned table bound as a whole, a renamed bound
-- column, a NOTIFY binding; history from INSERT, UPDATE and fire, with
-- payloads and actors.
\set ON_ERROR_STOP on
CREATE EXTENSION fsm;
DO $$ BEGIN CREATE ROLE fsm_dump_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT CREATE ON DATABASE fsm_source TO fsm_dump_owner;
SELECT fsm.create_machine('order', '{
  "states": {"created": {"initial": true}, "paid": {}, "shipped": {"final": true}},
  "events": {"pay": {"from": "created", "to": "paid"}, "ship": {"from": "paid", "to": "shipped"}}}');
SELECT fsm.create_machine('order', '{
  "states": {"created": {"initial": true}, "paid": {}, "shipped": {}, "returned": {"final": true}},
  "events": {"pay": {"from": "created", "to": "paid", "meta": {"v": 2}},
             "ship": {"from": "paid", "to": "shipped"}, "return": {"from": "shipped", "to": "returned"}}}', true);
SET ROLE fsm_dump_owner;
SELECT fsm.create_machine('payment', '{
  "states": {"due": {"initial": true}, "settled": {"final": true}},
  "events": {"settle": {"from": "due", "to": "settled"}}}');
RESET ROLE;

CREATE TABLE orders (id bigint PRIMARY KEY, status text, payment text);
SELECT fsm.attach('orders', 'status', 'order');
SELECT fsm.attach('orders', 'payment', 'payment', protect => true);
CREATE TABLE ledger (id int PRIMARY KEY, status text) PARTITION BY RANGE (id);
CREATE TABLE ledger_low PARTITION OF ledger FOR VALUES FROM (0) TO (100);
CREATE TABLE ledger_high PARTITION OF ledger FOR VALUES FROM (100) TO (200);
SELECT fsm.attach('ledger', 'status', 'order', notify => 'ledger');
CREATE TABLE parcels (code text PRIMARY KEY, status text);
SELECT fsm.attach('parcels', 'status', 'order');
ALTER TABLE parcels RENAME COLUMN status TO state;

INSERT INTO orders (id) SELECT generate_series(1, 4);
SET fsm.actor = 'alice';
SELECT fsm.fire('orders', 1, 'pay', '{"amount": 12.50, "note": "first"}');
UPDATE orders SET status = 'paid' WHERE id = 2;
UPDATE orders SET status = 'shipped' WHERE id IN (1, 2);
SELECT fsm.fire('orders', 3, 'settle');
INSERT INTO ledger (id) VALUES (1), (150);
UPDATE ledger SET status = 'paid';
RESET fsm.actor;
INSERT INTO parcels (code) VALUES ('P-1'), ('P-2');
SELECT fsm.fire('parcels', 'P-1'::text, 'pay', '{"amount": 1}');
