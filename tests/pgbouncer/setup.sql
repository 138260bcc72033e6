-- Tables and machines the pgbouncer test works on (tests/pgbouncer/run.sh).
CREATE EXTENSION fsm;
CREATE ROLE support;
-- orders: idempotency, refusals, fsm.event (ship and ship_express both lead
-- from paid to shipped), a role-restricted event.
SELECT fsm.create_machine('pb_order', '{
  "states": {"created": {"initial": true}, "paid": {}, "shipped": {"final": true},
             "cancelled": {"final": true}},
  "events": {"pay": {"from": "created", "to": "paid"},
             "ship": {"from": "paid", "to": "shipped"},
             "ship_express": {"from": "paid", "to": "shipped"},
             "cancel": {"from": ["created", "paid"], "to": "cancelled", "roles": ["support"]}}
}');
CREATE TABLE orders (id int PRIMARY KEY, status text);
SELECT fsm.attach('orders', 'status', 'pb_order');
INSERT INTO orders (id) SELECT generate_series(1, 100);
-- items: a cycle that one event, step, always moves on, so that any number of
-- clients can fire it at the same entities in any order.
SELECT fsm.create_machine('pb_cycle', '{
  "states": {"a": {"initial": true}, "b": {}, "c": {}},
  "events": {"step": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "a"}]}
}');
CREATE TABLE items (id int PRIMARY KEY, state text);
SELECT fsm.attach('items', 'state', 'pb_cycle');
INSERT INTO items (id) SELECT generate_series(1, 20);
-- A role that may connect and fire, but is not a member of support.
CREATE ROLE clerk LOGIN;
GRANT SELECT, UPDATE ON orders TO clerk;
-- parcels: notify at commit, for LISTEN through pgbouncer.
SELECT fsm.create_machine('pb_parcel', '{
  "states": {"packed": {"initial": true}, "sent": {"final": true}},
  "events": {"send": {"from": "packed", "to": "sent"}}
}');
CREATE TABLE parcels (id int PRIMARY KEY, state text);
SELECT fsm.attach('parcels', 'state', 'pb_parcel', notify => 'pb_events');
INSERT INTO parcels (id) SELECT generate_series(1, 5);
