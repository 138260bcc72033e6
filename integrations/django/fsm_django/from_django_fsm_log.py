"""django-fsm-log's `StateLog` rows copied into an fsm history table.

Each log row becomes one history row: `transition` the event,
`source_state`/`state` the move, `by` the actor (the user's username, as
the admin integration records it), `description` the payload's
`description`. Its id is a UUIDv7 of the row's timestamp (to the
millisecond, the precision of a UUIDv7's time) whose remaining bits are
the log row's primary key, so rows of one millisecond keep the log's order
and a second run finds the ids it wrote and adds nothing. `machine_version`
stays NULL: no version of the machine checked those moves; `db_user` is the
role that ran the copy.

One transaction: the copy lands whole or not at all.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.contrib.contenttypes.models import ContentType
from django.db import connections, transaction

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
RAND_BITS = 74  # rand_a (12) and rand_b (62) of RFC 9562's layout


def uuid7_of(at: datetime, sequence: int) -> uuid.UUID:
    """The UUIDv7 of millisecond `at` whose random bits are `sequence`."""
    if at.tzinfo is None:
        raise ValueError("a naive timestamp has no moment: set USE_TZ or give the zone")
    millis = (at - EPOCH) // timedelta(milliseconds=1)
    if not 0 <= millis < 1 << 48 or not 0 <= sequence < 1 << RAND_BITS:
        raise ValueError(f"no UUIDv7 for {at} and {sequence}")
    rand_a, rand_b = sequence >> 62, sequence & ((1 << 62) - 1)
    return uuid.UUID(int=(millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)


@dataclass
class Copied:
    history: str
    read: int
    written: int
    skipped: int  # rows of transitions that belong to another field


def binding_of(model, column: str | None, using: str) -> tuple[str, str]:
    """The history table and column of `model`'s table's binding (the only
    one, or that of `column`)."""
    table = connections[using].ops.quote_name(model._meta.db_table)
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT history::pg_catalog.text, col::pg_catalog.text FROM fsm.bindings "
            "WHERE tbl OPERATOR(pg_catalog.=) %s::pg_catalog.regclass "
            "AND (%s::pg_catalog.name IS NULL OR col OPERATOR(pg_catalog.=) %s::pg_catalog.name) "
            "ORDER BY col",
            [table, column, column],
        )
        rows = cursor.fetchall()
    if not rows:
        where = f"column {column} of " if column else ""
        raise LookupError(f"no fsm machine is attached to {where}{model._meta.db_table}")
    if len(rows) > 1:
        columns = ", ".join(c for _, c in rows)
        raise LookupError(f"{model._meta.db_table} carries several machines ({columns}): name the field")
    return rows[0]


def transitions_of(model, column: str) -> set[str] | None:
    """The transition names django-fsm-2 still declares on `column`, to tell
    apart the log rows of a model with several state fields; None when the
    model no longer declares any (then every row is the column's)."""
    try:
        from django_fsm import FSMFieldMixin
    except ImportError:
        return None
    fields = [f for f in model._meta.concrete_fields if isinstance(f, FSMFieldMixin)]
    if len(fields) < 2:
        return None
    for f in fields:
        if f.column == column:
            return {t.name for t in f.get_all_transitions(model)}
    return None


def copy_state_log(model, column: str | None = None, using: str = "default", batch: int = 1000) -> Copied:
    """Copies `model`'s StateLog rows into the history of its machine."""
    from django_fsm_log.models import StateLog

    history, column = binding_of(model, column, using)
    names = transitions_of(model, column)
    logs = (
        StateLog.objects.using(using)
        .filter(content_type=ContentType.objects.db_manager(using).get_for_model(model))
        .select_related("by")
        .order_by("pk")
    )
    insert = (
        f"INSERT INTO {history} (id, entity_key, event, from_state, to_state, payload, actor) "
        "VALUES (%s, %s, %s, %s, %s, %s::pg_catalog.jsonb, %s) ON CONFLICT (id) DO NOTHING"
    )
    count = f"SELECT pg_catalog.count(*) FROM {history}"
    read = skipped = 0
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(count)
        before = cursor.fetchone()[0]
        rows = []
        for log in logs.iterator(chunk_size=batch):
            read += 1
            if names is not None and log.transition not in names:
                skipped += 1
                continue
            payload = json.dumps({"description": log.description}) if log.description else None
            actor = log.by.get_username() if log.by is not None else None
            rows.append(
                (uuid7_of(log.timestamp, log.pk), log.object_id, log.transition,
                 log.source_state, log.state, payload, actor)
            )
            if len(rows) == batch:
                cursor.executemany(insert, rows)
                rows.clear()
        if rows:
            cursor.executemany(insert, rows)
        cursor.execute(count)
        written = cursor.fetchone()[0] - before
    return Copied(history, read, written, skipped)
