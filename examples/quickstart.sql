-- fsm quickstart: a machine, a table that follows it, transitions, a
-- refusal, the history and a diagram. Run by `scripts/quickstart.sh`.
\set ON_ERROR_STOP on
\set VERBOSITY default
CREATE EXTENSION IF NOT EXISTS fsm;

SELECT fsm.create_machine('order', '{
  "states": {
    "created":   {"initial": true},
    "paid":      {"meta": {"label": "Paid"}},
    "shipped":   {},
    "delivered": {"final": true},
    "cancelled": {"final": true}
  },
  "events": {
    "pay":     {"from": "created", "to": "paid",
                "payload": {"type": "object", "required": ["amount"],
                            "properties": {"amount": {"type": "number", "minimum": 0}}}},
    "ship":    {"from": "paid", "to": "shipped"},
    "deliver": {"from": "shipped", "to": "delivered"},
    "cancel":  {"from": ["created", "paid"], "to": "cancelled"}
  }
}') AS version;

CREATE TABLE orders (id bigint PRIMARY KEY, customer text, status text);
SELECT fsm.attach('orders', 'status', 'order') AS history_table;

-- The initial state is set for you.
SET fsm.actor = 'alice@example.com';
INSERT INTO orders (id, customer) VALUES (1, 'ada'), (2, 'grace');
SELECT * FROM orders ORDER BY id;

-- Fire events by name, with a payload checked against its schema...
SELECT fsm.fire('orders', 1, 'pay', '{"amount": 42}') AS new_state;
-- ...or just UPDATE the column: the trigger enforces the same rules.
UPDATE orders SET status = 'shipped' WHERE id = 1;
SELECT fsm.fire('orders', 2, 'cancel') AS new_state;

-- An undeclared transition fails in the caller's statement.
\set ON_ERROR_STOP off
\set VERBOSITY verbose
UPDATE orders SET status = 'delivered' WHERE id = 2;
\set VERBOSITY default
\set ON_ERROR_STOP on

SELECT * FROM orders ORDER BY id;

-- Every change appended a UUIDv7 history row in the same transaction.
SELECT at IS NOT NULL AS timed, event, from_state, to_state, payload, actor
  FROM fsm.history('orders', 1::bigint) ORDER BY id;

SELECT entity_key, state, last_event FROM fsm.current_states('orders', ARRAY[1, 2]::bigint[]);

SELECT fsm.to_mermaid('order');
