-- The README's examples, as written there, in a database of their own (the
-- README's names are the ones earlier files use too).
\set SHOW_CONTEXT never
CREATE DATABASE fsm_readme;
\c fsm_readme
\set SHOW_CONTEXT never
-- "In five statements"
CREATE EXTENSION fsm;

SELECT fsm.create_machine('order', '{
  "states": {"created": {"initial": true}, "paid": {}, "shipped": {},
             "delivered": {"final": true}, "cancelled": {"final": true}},
  "events": {"pay":     {"from": "created", "to": "paid",
                         "payload": {"type": "object", "required": ["amount"]}},
             "ship":    {"from": "paid", "to": "shipped"},
             "deliver": {"from": "shipped", "to": "delivered"},
             "cancel":  {"from": ["created", "paid"], "to": "cancelled"}}
}');

CREATE TABLE orders (id bigint PRIMARY KEY, customer text, status text);
SELECT fsm.attach('orders', 'status', 'order');   -- returns the history table

INSERT INTO orders (id, customer) VALUES (1, 'ada');        -- status = 'created'
SELECT fsm.fire('orders', 1, 'pay', '{"amount": 42}');      -- 'paid'
UPDATE orders SET status = 'shipped' WHERE id = 1;          -- event "ship"
UPDATE orders SET status = 'created' WHERE id = 1;

SELECT event, from_state, to_state, payload FROM fsm.history('orders', 1::bigint);
SELECT entity_key, state, last_event FROM fsm.current_states('orders', ARRAY[1, 2, 3]::bigint[]);
SELECT fsm.to_mermaid('order');

-- "Reading history"
SELECT event, from_state, to_state, actor FROM fsm.history('orders', 1, lim => 10);
SELECT entity_key, event, from_state, to_state
  FROM fsm.changes('orders', since => now() - interval '1 hour');
SELECT count(*) FROM fsm.changes('orders', since => current_date, event => 'cancel');
SELECT entity_key, state, last_event FROM fsm.current_states('orders', ARRAY[1, 2, 3]);
SELECT entity_key, state FROM fsm.states_at('orders', ARRAY[1, 2, 3], now() - interval '1 day');
SELECT entity_key, state FROM fsm.states_at('orders', ARRAY[1, 2, 3], now());

-- "Analytics"
SELECT entity_key, state, entered FROM fsm.time_in_state('orders', ARRAY[1, 2], now() - interval '1 day', now());
SELECT state, entered, still_in, next
  FROM fsm.state_stats('orders', since => now() - interval '7 days');

-- "Asking before acting"
INSERT INTO orders (id, customer) VALUES (2, 'grace');
SELECT fsm.can_fire('orders', 2, 'pay');                     -- false: "pay" needs {"amount": …}
SELECT fsm.can_fire('orders', 2, 'pay', '{"amount": 42}');   -- true
SELECT * FROM fsm.available_events('orders', 2);


-- "Actions and on_error"
CREATE TABLE charges (id bigint PRIMARY KEY, status text, receipt text);
CREATE FUNCTION public.charge_card(c charges, p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF (p->>'amount')::numeric > 100 THEN
    RAISE EXCEPTION 'card declined' USING ERRCODE = 'P0001';
  END IF;
  UPDATE charges SET receipt = 'R-' || c.id WHERE id = c.id;   -- its own row: allowed
END $$;
SELECT fsm.create_machine('card_charge', '{
  "states": {"new": {"initial": true}, "charged": {"final": true}, "declined": {"final": true}},
  "events": {"charge": {"from": "new", "to": "charged",
                        "action": "public.charge_card", "on_error": "declined"}}}');
SELECT fsm.attach('charges', 'status', 'card_charge');
INSERT INTO charges (id) VALUES (1), (2);
SELECT fsm.fire('charges', 1, 'charge', '{"amount": 40}');    -- 'charged', receipt 'R-1'
SELECT fsm.fire('charges', 2, 'charge', '{"amount": 400}');   -- 'declined'
SELECT payload FROM fsm.history('charges', 2::bigint, lim => 1);
SELECT * FROM charges ORDER BY id;

-- "Errors": the error fields.
DO $$ DECLARE t text; c text; n text; BEGIN
  PERFORM fsm.fire('orders', 2, 'pay');          -- order 2 is created; no {"amount": …}
EXCEPTION WHEN invalid_parameter_value THEN
  GET STACKED DIAGNOSTICS t = TABLE_NAME, c = COLUMN_NAME, n = CONSTRAINT_NAME;
  RAISE NOTICE '% % %', t, c, n;                 -- orders status order:pay
END $$;

-- "fire": idempotency keys.
SELECT fsm.fire('orders', 2, 'pay', '{"amount": 42}', idempotency_key => 'checkout-7f3a');  -- 'paid'
SELECT fsm.fire('orders', 2, 'pay', '{"amount": 42}', idempotency_key => 'checkout-7f3a');  -- 'paid', no second move
SELECT count(*) AS pay_rows FROM orders_status_history WHERE entity_key = 2 AND event = 'pay';

-- "The definition": diagrams, with meta.label and on_error.
SELECT fsm.create_machine('charging', '{
  "states": {"new": {"initial": true}, "charged": {"meta": {"label": "Charged"}},
             "failed": {"final": true, "meta": {"label": "Card declined"}}, "done": {"final": true}},
  "events": {"charge": {"from": "new", "to": "charged", "action": "public.charge_card", "on_error": "failed"},
             "finish": {"from": "charged", "to": "done"}}}');
SELECT fsm.to_dot('charging');
SELECT fsm.to_mermaid('charging');

-- "The definition": events as lists of branches.
CREATE TABLE tickets (id int PRIMARY KEY, vip boolean NOT NULL, state text);
CREATE FUNCTION is_vip(t tickets, payload jsonb) RETURNS boolean
    LANGUAGE sql AS $$ SELECT t.vip $$;
SELECT fsm.create_machine('ticket', '{
  "states": {"open": {"initial": true}, "escalated": {}, "closed": {"final": true}},
  "events": {"resolve": [{"from": "open", "to": "escalated", "guard": "public.is_vip"},
                         {"from": ["open", "escalated"], "to": "closed"}]}}');
SELECT fsm.attach('tickets', 'state', 'ticket');
INSERT INTO tickets VALUES (1, true), (2, false);
SELECT fsm.fire('tickets', 1, 'resolve');   -- 'escalated': the guard passed
SELECT fsm.fire('tickets', 2, 'resolve');   -- 'closed': the second branch
SELECT fsm.fire('tickets', 1, 'resolve');   -- 'closed'
SELECT event, from_state, to_state FROM tickets_state_history ORDER BY entity_key, id;

-- "State columns": an enum and a smallint.
CREATE TYPE lamp_state AS ENUM ('off', 'on');
SELECT fsm.create_machine('lamp', '{"states": {"off": {"initial": true}, "on": {}},
  "events": {"switch_on": {"from": "off", "to": "on"}, "switch_off": {"from": "on", "to": "off"}}}');
CREATE TABLE lamps (id int PRIMARY KEY, state lamp_state);
SELECT fsm.attach('lamps', 'state', 'lamp');
INSERT INTO lamps (id) VALUES (1);                 -- state = 'off'
UPDATE lamps SET state = 'on' WHERE id = 1;        -- event "switch_on"
SELECT event, from_state, to_state FROM lamps_state_history ORDER BY id;

SELECT fsm.create_machine('review', '{"states": {"10": {"initial": true}, "20": {"final": true}},
  "events": {"approve": {"from": "10", "to": "20"}}}');
CREATE TABLE reviews (id int PRIMARY KEY, stage smallint);
SELECT fsm.attach('reviews', 'stage', 'review');
INSERT INTO reviews (id) VALUES (1);               -- stage = 10
SELECT fsm.fire('reviews', 1, 'approve');          -- '20'
SELECT id, stage FROM reviews;
