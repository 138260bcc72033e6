"""Machine definitions from django-fsm-2's `@transition` declarations.

What moves into the database: states (the field's choices and every state
a transition names), the initial state (the field's default), final
states (those no transition leaves), events with their sources (lists,
`*`, `+`), targets (a state, `RETURN_VALUE`/`GET_STATE` lists, `None` as a
self-transition), stacked decorators as branches, and `custom` as the
event's `meta`. What cannot (Python `conditions`, `permission`, `on_error`
around a Python method body, a dynamic target without its list of states)
is listed in `to_port` for the user, never silently dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.db.models.fields import NOT_PROVIDED

ANY_STATE, ANY_OTHER_STATE = "*", "+"


@dataclass
class Converted:
    label: str
    machine: str
    definition: dict
    protect: bool
    to_port: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "model": self.label,
            "machine": self.machine,
            "protect": self.protect,
            "definition": self.definition,
            "to_port": self.to_port,
        }


def fsm_fields(model) -> list:
    """The django-fsm fields of `model`."""
    from django_fsm import FSMFieldMixin

    return [f for f in model._meta.concrete_fields if isinstance(f, FSMFieldMixin)]


def convert(model, fsm_field, machine: str | None = None) -> Converted:
    """The machine of `fsm_field` on `model`."""
    from django_fsm import State

    label = f"{model._meta.label}.{fsm_field.name}"
    machine = machine or f"{model._meta.app_label}_{model._meta.model_name}_{fsm_field.name}"
    to_port: list[str] = []
    transitions = [t for t in fsm_field.get_all_transitions(model)]

    states: list[str] = []

    def declare(value) -> str:
        name = str(value)
        if name not in states:
            states.append(name)
        return name

    for value, _label in fsm_field.flatchoices or []:
        declare(value)
    for t in transitions:
        if t.source not in (ANY_STATE, ANY_OTHER_STATE):
            declare(t.source)
        if isinstance(t.target, State):
            for s in t.target.allowed_states:
                declare(s)
        elif t.target is not None:
            declare(t.target)
        if t.on_error is not None:
            declare(t.on_error)

    default = fsm_field.default
    if default is NOT_PROVIDED or default is None:
        raise ValueError(f"{label} has no default: fsm needs the initial state (give the field a default)")
    initial = declare(default() if callable(default) else default)

    events: dict[str, list[dict]] = {}
    by_method: dict[str, list] = {}
    for t in transitions:
        by_method.setdefault(t.name, []).append(t)
    for name, method_transitions in sorted(by_method.items()):
        # django-fsm looks a source up exactly first, then `*`, then `+`.
        rank = {ANY_STATE: 1, ANY_OTHER_STATE: 2}
        method_transitions.sort(key=lambda t: rank.get(t.source, 0))
        branches: list[dict] = []
        for t in method_transitions:
            source = t.source if t.source in rank else str(t.source)
            where = f"{name} (from {source})"
            if t.conditions:
                names = ", ".join(getattr(c, "__qualname__", repr(c)) for c in t.conditions)
                to_port.append(
                    f"{where}: conditions {names} run in Python; port them as one SQL guard "
                    f'(row, payload jsonb) RETURNS boolean and add "guard" to the event'
                )
            if t.permission:
                what = t.permission if isinstance(t.permission, str) else getattr(
                    t.permission, "__qualname__", repr(t.permission))
                to_port.append(
                    f'{where}: permission {what}: give it as PostgreSQL roles in "roles" '
                    f"(the caller must be a member of one)"
                )
            if t.on_error is not None:
                to_port.append(
                    f"{where}: on_error {t.on_error} guards the Python method's body; fsm's "
                    f'"on_error" applies to an "action" function: move the side effect into one '
                    f"to keep it"
                )
            extra = {"meta": _json_safe(t.custom)} if t.custom else {}
            if isinstance(t.target, State):
                if not t.target.allowed_states:
                    to_port.append(
                        f"{where}: the target is chosen in Python with no list of states; declare "
                        f"them (RETURN_VALUE('a', 'b') or GET_STATE(..., states=[...])): this "
                        f"transition is left out until then"
                    )
                    continue
                targets = [str(s) for s in t.target.allowed_states]
                branches.append({"from": source, "to": targets if len(targets) > 1 else targets[0], **extra})
            elif t.target is None:
                # The state does not change: a self-transition from each source.
                sources = states if source in rank else [source]
                branches.extend({"from": s, "to": s, **extra} for s in sources)
            else:
                branches.append({"from": source, "to": str(t.target), **extra})
        merged = _merge_sources(branches)
        if merged:
            events[name] = merged

    leaving = set()
    for branches in events.values():
        for b in branches:
            if b["from"] == ANY_STATE:
                leaving.update(states)
            elif b["from"] == ANY_OTHER_STATE:
                leaving.update(s for s in states if s != b["to"])
            else:
                leaving.update(b["from"] if isinstance(b["from"], list) else [b["from"]])
    definition = {
        "states": {
            s: {**({"initial": True} if s == initial else {}), **({"final": True} if s not in leaving else {})}
            for s in states
        },
        "events": {name: (b[0] if len(b) == 1 else b) for name, b in events.items()},
    }
    return Converted(label, machine, definition, bool(fsm_field.protected), to_port)


def _merge_sources(branches: list[dict]) -> list[dict]:
    """Branches that differ only in a specific source become one branch
    with a list of sources (kept in order; `*` and `+` stay alone)."""
    merged: list[dict] = []
    for b in branches:
        rest = {k: v for k, v in b.items() if k != "from"}
        for m in merged:
            if (
                b["from"] not in (ANY_STATE, ANY_OTHER_STATE)
                and m["from"] not in (ANY_STATE, ANY_OTHER_STATE)
                and {k: v for k, v in m.items() if k != "from"} == rest
            ):
                m["from"] = (m["from"] if isinstance(m["from"], list) else [m["from"]]) + [b["from"]]
                break
        else:
            merged.append(dict(b))
    return merged


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
