-- Machines: declaring, validating, replacing, introspecting, dropping.
-- After each refused statement, the SQLSTATE is echoed.
\set SHOW_CONTEXT never
CREATE EXTENSION fsm;

-- A valid machine is stored as version 1.
SELECT fsm.create_machine('order', '{
  "states": {
    "created":   {"initial": true},
    "paid":      {"meta": {"label": "Paid"}},
    "shipped":   {"timeout": {"after": "7 days", "event": "lose"}},
    "delivered": {"final": true},
    "cancelled": {"final": true},
    "lost":      {"final": true}
  },
  "events": {
    "pay":     {"from": "created", "to": "paid", "payload": {"type": "object", "required": ["amount"]}},
    "ship":    {"from": "paid", "to": "shipped"},
    "deliver": {"from": "shipped", "to": "delivered"},
    "lose":    {"from": "shipped", "to": "lost"},
    "cancel":  {"from": ["created", "paid"], "to": "cancelled", "roles": ["support"]},
    "review":  {"from": "paid", "to": ["paid", "cancelled"]},
    "reset":   {"from": "+", "to": "created"}
  }
}');

SELECT name, version FROM fsm.machines;
SELECT state, initial, final, meta FROM fsm.states WHERE machine = 'order' ORDER BY state;
-- One row per (event, from, to) after "+" and lists are expanded.
SELECT event, from_state, to_state FROM fsm.transitions WHERE machine = 'order' ORDER BY 1, 2, 3;
-- The normalized definition: from/to as lists, "+" kept, defaults left out.
SELECT jsonb_pretty(fsm.machine_definition('order') -> 'events' -> 'cancel');
SELECT fsm.machine_definition('order') -> 'events' -> 'reset';

-- Declaring it again without replace is refused.
SELECT fsm.create_machine('order', '{"states": {"a": {"initial": true}}, "events": {}}');
\echo :LAST_ERROR_SQLSTATE

-- Every broken rule is refused with 42P17 and a message naming the culprit.
SELECT fsm.create_machine('bad', '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', '{"states": {"a": {"initial": true}}, "events": {}, "extra": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', '{"states": {"a": {"initial": true, "inital": true}}, "events": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', '{"states": {"a": {}, "b": {}}, "events": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', '{"states": {"a": {"initial": true}, "b": {"initial": true}}, "events": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', '{"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "nowhere"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', '{"states": {"a": {"initial": true}, "z": {"final": true}}, "events": {"back": {"from": "z", "to": "a"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', '{"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "gaurd": "f"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', '{"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "guard": "f(); drop table x"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', '{"states": {"a": {"initial": true}}, "events": {"go": {"from": "a", "to": "a", "payload": {"type": 12}}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', '{"states": {"a": {"initial": true, "timeout": {"after": "soon", "event": "go"}}}, "events": {"go": {"from": "a", "to": "a"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.create_machine('bad', NULL);
\echo :LAST_ERROR_SQLSTATE
-- Nothing of a refused machine was stored.
SELECT count(*) AS bad_machines FROM fsm.machines WHERE name = 'bad';

-- Unreachable states and dead ends are stored, with WARNINGs.
SELECT fsm.create_machine('draft', '{"states": {"a": {"initial": true}, "b": {}, "island": {}}, "events": {"go": {"from": "a", "to": "b"}}}');

-- Diagrams.
SELECT fsm.to_dot('draft');
SELECT fsm.to_mermaid('draft');

-- Replacing bumps the version.
SELECT fsm.create_machine('draft', '{"states": {"a": {"initial": true}, "b": {"final": true}}, "events": {"go": {"from": "a", "to": "b"}}}', replace => true);
SELECT name, version FROM fsm.machines ORDER BY name;

-- Unknown machines are 42704 everywhere.
SELECT fsm.machine_definition('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.to_mermaid('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT fsm.drop_machine('nope');
\echo :LAST_ERROR_SQLSTATE

SELECT fsm.drop_machine('draft');
SELECT name FROM fsm.machines ORDER BY name;
SELECT count(*) AS draft_states FROM fsm.states WHERE machine = 'draft';
