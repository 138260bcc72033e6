"""The machines and tables the tests use."""

ORDER = {
    "states": {
        "new": {"initial": True},
        "paid": {},
        "shipped": {},
        "cancelled": {"final": True},
        "delivered": {"final": True},
    },
    "events": {
        "pay": {"from": "new", "to": "paid", "payload": {
            "type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}},
        "ship": {"from": "paid", "to": "shipped", "guard": "public.has_tracking"},
        "deliver": {"from": "shipped", "to": "delivered"},
        "cancel": {"from": ["new", "paid"], "to": "cancelled"},
    },
}

# What the guard reads; created before the machine (create_machine checks it).
ORDER_TABLE = """
CREATE TABLE orders (id bigint PRIMARY KEY, status text, tracking text);
CREATE FUNCTION public.has_tracking(o orders, payload jsonb) RETURNS boolean
  LANGUAGE sql STABLE AS $$ SELECT o.tracking IS NOT NULL $$;
"""

# Integer states: a level that only goes up.
LEVEL = {
    "states": {"1": {"initial": True}, "2": {}, "3": {"final": True}},
    "events": {"raise": [{"from": "1", "to": "2"}, {"from": "2", "to": "3"}]},
}
