ORDER = {
    "states": {
        "created": {"initial": True},
        "paid": {},
        "shipped": {},
        "delivered": {"final": True},
        "cancelled": {"final": True},
    },
    "events": {
        "pay": {"from": "created", "to": "paid",
                "payload": {"type": "object", "required": ["amount"]}},
        "ship": {"from": "paid", "to": "shipped", "guard": "public.shop_has_tracking"},
        "deliver": {"from": "shipped", "to": "delivered"},
        "cancel": {"from": ["created", "paid"], "to": "cancelled"},
        # A dynamic target: fire(..., to=...) picks one.
        "review": {"from": "paid", "to": ["paid", "cancelled"]},
    },
}
