"""A model mixin that fires fsm events and reads what fsm knows.

    class Order(FSMModelMixin, models.Model):
        status = models.TextField(null=True)
        fsm_field = "status"

    order.fire("pay", payload={"amount": 10}, idempotency_key=request_id)
    order.status                  # "paid": the field is set to what fire wrote
    order.available_events()      # [AvailableEvent(event="ship", ...), ...]
    order.history()               # [HistoryEntry(event="pay", ...), ...] newest first

Every call is one statement on the model's database connection: in
autocommit, a transaction of its own (one round trip); inside the
caller's transaction, in a savepoint of its own, so a refusal leaves that
transaction usable. A refusal raises the FsmError subclass of
its SQLSTATE, with the error fields, the entity's current state and the
events allowed now.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from django.db import DatabaseError, connections, router, transaction

from fsm_django.exceptions import FsmError, from_database_error


@dataclass(frozen=True)
class AvailableEvent:
    event: str
    to_states: list[str]
    allowed: bool
    reason: str | None


@dataclass(frozen=True)
class HistoryEntry:
    id: UUID
    at: datetime
    event: str | None
    from_state: str | None
    to_state: str
    payload: Any
    actor: str | None
    db_user: str


class FSMModelMixin:
    """Mix into a model whose table fsm.attach bound to a machine.

    `fsm_field` names the state field the mixin refreshes after `fire`
    (and, where the table carries several machines, the binding every
    call uses unless `col` says otherwise)."""

    fsm_field: str | None = None

    # -- acting -----------------------------------------------------------

    def fire(
        self,
        event: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        expect: str | None = None,
        to: str | None = None,
        col: str | None = None,
        using: str | None = None,
    ) -> str:
        """Fires `event` on this row and returns the new state, which the
        state field is set to (the whole row is read again when the class
        names no `fsm_field`)."""
        using = using or router.db_for_write(type(self), instance=self)
        target = _FireTarget.of(type(self), using, col)
        # Only the arguments given go to the server: the statement stays
        # short for the common call, and fsm applies its own defaults.
        optional = [
            (name, value)
            for name, value in (
                ("payload", None if payload is None else json.dumps(payload)),
                ("expect", expect),
                ('"to"', to),
                ("col", target.column),
                ("idempotency_key", idempotency_key),
            )
            if value is not None
        ]
        sql = target.sql + "".join(
            f", {name} => %s::pg_catalog.jsonb" if name == "payload" else f", {name} => %s" for name, _ in optional
        ) + ")"
        params = [target.table, self.pk, event, *(value for _, value in optional)]
        state = self._fsm_call(using, sql, params, target.column)[0][0]
        if target.field is not None:
            # fire returns what it wrote: no second query to read it back.
            setattr(self, target.field.attname, target.field.to_python(state))
        else:
            self.refresh_from_db(using=using)
        return state

    # -- asking -----------------------------------------------------------

    def can_fire(self, event: str, payload: Any = None, *, using: str | None = None) -> bool:
        """Whether `event` would be allowed now (guards and roles applied)."""
        using = using or router.db_for_read(type(self), instance=self)
        sql = (
            "SELECT fsm.can_fire(%s::pg_catalog.regclass, " + self._fsm_key_sql(using) + ", %s, "
            "%s::pg_catalog.jsonb)"
        )
        params = [
            self._fsm_table(using),
            self.pk,
            event,
            None if payload is None else json.dumps(payload),
        ]
        return self._fsm_call(using, sql, params, None)[0][0]

    def available_events(self, *, col: str | None = None, using: str | None = None) -> list[AvailableEvent]:
        """Every event of the machine, whether it is allowed now and why not."""
        using = using or router.db_for_read(type(self), instance=self)
        sql = (
            "SELECT event, to_states, allowed, reason FROM fsm.available_events("
            "%s::pg_catalog.regclass, " + self._fsm_key_sql(using) + ", col => %s)"
        )
        params = [self._fsm_table(using), self.pk, self._fsm_column(col)]
        return [AvailableEvent(*row) for row in self._fsm_call(using, sql, params, None)]

    def allowed_events(self, *, col: str | None = None, using: str | None = None) -> list[str]:
        """The names of the events allowed now."""
        return [e.event for e in self.available_events(col=col, using=using) if e.allowed]

    # -- reading ----------------------------------------------------------

    def history(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        col: str | None = None,
        using: str | None = None,
    ) -> list[HistoryEntry]:
        """This row's history, newest first."""
        using = using or router.db_for_read(type(self), instance=self)
        sql = (
            "SELECT id, at, event, from_state, to_state, payload, actor, db_user FROM fsm.history("
            "%s::pg_catalog.regclass, " + self._fsm_key_sql(using) + ", since => %s, until => %s, "
            "lim => %s, col => %s)"
        )
        params = [self._fsm_table(using), self.pk, since, until, limit, self._fsm_column(col)]
        return [
            # Django's PostgreSQL backend hands jsonb over as its text.
            HistoryEntry(*row[:5], json.loads(row[5]) if isinstance(row[5], str) else row[5], *row[6:])
            for row in self._fsm_call(using, sql, params, None)
        ]

    # -- plumbing ---------------------------------------------------------

    def _fsm_call(self, using: str, sql: str, params: list, column: str | None) -> list[tuple]:
        connection = connections[using]
        # In autocommit the statement is its own transaction and a refusal
        # leaves nothing to recover; in the caller's, a savepoint does.
        scope = nullcontext() if connection.get_autocommit() else transaction.atomic(using=using)
        try:
            with scope, connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        except DatabaseError as error:
            refusal = from_database_error(error)
            if refusal is None:
                raise
            self._fsm_explain(using, refusal, column)
            raise refusal from error

    def _fsm_explain(self, using: str, refusal: FsmError, column: str | None) -> None:
        """Fills in the state the row is in and the events allowed now,
        read after the refused statement was rolled back to its savepoint.
        Best effort: a caller who may not read the table gets the refusal
        without them."""
        connection = connections[using]
        try:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                field = type(self)._meta.get_field(self._fsm_field_name(column or refusal.column))
                cursor.execute(
                    "SELECT " + connection.ops.quote_name(field.column) + "::pg_catalog.text FROM "
                    + self._fsm_table(using) + " WHERE "
                    + connection.ops.quote_name(type(self)._meta.pk.column) + " = %s",
                    [self.pk],
                )
                row = cursor.fetchone()
                refusal.state = row[0] if row else None
                refusal.allowed_events = self.allowed_events(col=column or refusal.column, using=using)
        except Exception:  # noqa: BLE001 - the refusal is what the caller must see
            pass

    @classmethod
    def _fsm_field_name(cls, col: str | None) -> str:
        """The model field of state column `col` (a column name), or of
        `fsm_field`."""
        if col:
            for f in cls._meta.concrete_fields:
                if f.column == col:
                    return f.name
        if not cls.fsm_field:
            raise ValueError(f"{cls.__name__} names no fsm_field")
        return cls.fsm_field

    @classmethod
    def _fsm_column(cls, col: str | None) -> str | None:
        """The state column a call names: `col`, or `fsm_field`'s column
        when the class names one."""
        if col:
            return col
        if cls.fsm_field:
            return cls._meta.get_field(cls.fsm_field).column
        return None

    def _fsm_table(self, using: str) -> str:
        """The table's name, quoted: a regclass argument and a FROM item."""
        return connections[using].ops.quote_name(type(self)._meta.db_table)

    def _fsm_key_sql(self, using: str) -> str:
        """The key parameter cast to the primary key's column type, so
        fsm.fire's polymorphic `key` gets a known type."""
        db_type = type(self)._meta.pk.rel_db_type(connections[using])
        return "%s::" + db_type


@dataclass(frozen=True)
class _FireTarget:
    """What `fire` needs of a model class on one database, worked out once:
    the quoted table, the start of the statement (key cast to the primary
    key's type, so fsm.fire's polymorphic `key` gets a known type), the
    state column and its field (None: the row is read back instead)."""

    table: str
    sql: str
    column: str | None
    field: Any

    _cache: ClassVar[dict[tuple, "_FireTarget"]] = {}

    @classmethod
    def of(cls, model: type, using: str, col: str | None) -> "_FireTarget":
        key = (model, using, col)
        target = cls._cache.get(key)
        if target is None:
            connection = connections[using]
            table = connection.ops.quote_name(model._meta.db_table)
            key_type = model._meta.pk.rel_db_type(connection)
            column = model._fsm_column(col)
            field = model._meta.get_field(model._fsm_field_name(col)) if (model.fsm_field or col) else None
            target = cls(table, f"SELECT fsm.fire(%s::pg_catalog.regclass, %s::{key_type}, %s", column, field)
            cls._cache[key] = target
        return target
