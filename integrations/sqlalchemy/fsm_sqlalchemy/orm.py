"""A declarative mixin that fires fsm events and reads what fsm knows.

    class Order(FSMMixin, Base):
        __tablename__ = "orders"
        __fsm_column__ = "status"
        id: Mapped[int] = mapped_column(primary_key=True)
        status: Mapped[str | None]

    order.fire("pay", payload={"amount": 10}, idempotency_key=request_id)
    order.status                  # "paid"
    order.available_events()      # [AvailableEvent(event="ship", ...), ...]
    order.history()               # [HistoryEntry(event="pay", ...), ...] newest first

Each call is one statement in the instance's session, inside a savepoint
of its own (`Session.begin_nested`), so a refusal leaves the session's
transaction usable; pending changes are flushed first. A refusal raises
the `fsm_client` exception of its SQLSTATE, with the error fields, the
entity's current state and the events allowed now.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from fsm_client.exceptions import FsmError, from_database_error


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


class FSMMixin:
    """Mix into a mapped class whose table fsm.attach bound to a machine.
    `__fsm_column__` names the state column fire sets on the instance (and,
    where the table carries several machines, the binding every call uses
    unless `col` says otherwise)."""

    __fsm_column__: str | None = None

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
    ) -> str:
        """Fires `event` on this row and returns the new state, which the
        state attribute is set to (as loaded: the session sees no change
        to flush)."""
        column = col or self.__fsm_column__
        state = self._fsm_call(
            "SELECT fsm.fire(CAST(:tbl AS pg_catalog.regclass), {key}, :event, "
            "payload => CAST(:payload AS pg_catalog.jsonb), expect => :expect, \"to\" => :to, "
            "col => :col, idempotency_key => :idempotency_key)",
            dict(event=event, payload=_json(payload), expect=expect, to=to, col=column,
                 idempotency_key=idempotency_key),
            column,
        )[0][0]
        if column:
            attribute = self._fsm_attribute(column)
            set_committed_value(self, attribute.key, _as_loaded(attribute, state, self._fsm_session()))
        else:
            self._fsm_session().refresh(self)
        return state

    # -- asking -----------------------------------------------------------

    def can_fire(self, event: str, payload: Any = None, *, col: str | None = None) -> bool:
        """Whether `event` would be allowed now (guards and roles applied)."""
        return self._fsm_call(
            "SELECT fsm.can_fire(CAST(:tbl AS pg_catalog.regclass), {key}, :event, "
            "CAST(:payload AS pg_catalog.jsonb), col => :col)",
            dict(event=event, payload=_json(payload), col=col or self.__fsm_column__),
            None,
        )[0][0]

    def available_events(self, *, col: str | None = None) -> list[AvailableEvent]:
        """Every event of the machine, whether it is allowed now and why not."""
        rows = self._fsm_call(
            "SELECT event, to_states, allowed, reason FROM fsm.available_events("
            "CAST(:tbl AS pg_catalog.regclass), {key}, col => :col)",
            dict(col=col or self.__fsm_column__),
            None,
        )
        return [AvailableEvent(*row) for row in rows]

    def allowed_events(self, *, col: str | None = None) -> list[str]:
        """The names of the events allowed now."""
        return [e.event for e in self.available_events(col=col) if e.allowed]

    # -- reading ----------------------------------------------------------

    def history(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        col: str | None = None,
    ) -> list[HistoryEntry]:
        """This row's history, newest first."""
        rows = self._fsm_call(
            "SELECT id, at, event, from_state, to_state, payload, actor, db_user FROM fsm.history("
            "CAST(:tbl AS pg_catalog.regclass), {key}, since => :since, until => :until, lim => :lim, "
            "col => :col)",
            dict(since=since, until=until, lim=limit, col=col or self.__fsm_column__),
            None,
        )
        return [HistoryEntry(*row) for row in rows]

    # -- plumbing ---------------------------------------------------------

    def _fsm_session(self) -> Session:
        session = object_session(self)
        if session is None:
            raise ValueError(f"{type(self).__name__} is not in a session: add it to one first")
        return session

    def _fsm_call(self, sql: str, params: dict, column: str | None) -> list[tuple]:
        session = self._fsm_session()
        session.flush()
        mapper = inspect(type(self))
        (key_column,) = mapper.primary_key
        key_type = key_column.type.compile(dialect=session.get_bind().dialect)
        statement = text(sql.format(key=f"CAST(:key AS {key_type})")).bindparams(
            bindparam("key", type_=key_column.type)
        )
        params = dict(params, tbl=_table_name(mapper), key=_key_of(self))
        try:
            with session.begin_nested():
                return [tuple(row) for row in session.execute(statement, params)]
        except DBAPIError as error:
            refusal = from_database_error(error)
            if refusal is None:
                raise
            self._fsm_explain(session, refusal, column)
            raise refusal from error

    def _fsm_explain(self, session: Session, refusal: FsmError, column: str | None) -> None:
        """Fills in the state the row is in and the events allowed now,
        read after the refused statement was rolled back to its savepoint.
        Best effort: a caller who may not read the table gets the refusal
        without them."""
        try:
            with session.begin_nested():
                attribute = self._fsm_attribute(column or refusal.column)
                table = inspect(type(self)).local_table
                (key_column,) = inspect(type(self)).primary_key
                value = session.execute(
                    table.select().with_only_columns(attribute.columns[0]).where(
                        key_column == _key_of(self)
                    )
                ).scalar()
            refusal.state = None if value is None else str(value)
            refusal.allowed_events = self.allowed_events(col=column or refusal.column)
        except Exception:  # noqa: BLE001 - the refusal is what the caller must see
            pass

    def _fsm_attribute(self, column: str | None):
        """The mapped attribute of state column `column`."""
        if not column:
            raise ValueError(f"{type(self).__name__} names no __fsm_column__")
        for attribute in inspect(type(self)).column_attrs:
            if any(c.name == column for c in attribute.columns):
                return attribute
        raise ValueError(f"{type(self).__name__} maps no column {column!r}")


def _key_of(instance) -> Any:
    """The instance's primary key as flushed: its identity, which does not
    load anything (an expired instance whose row is gone still has it, so
    fsm answers P0002 rather than SQLAlchemy ObjectDeletedError)."""
    identity = inspect(instance).identity
    if identity is None:
        raise ValueError(f"{type(instance).__name__} has no primary key yet")
    return identity[0]


def _table_name(mapper) -> str:
    """The mapped table's name, quoted, for a regclass."""
    table = mapper.local_table
    parts = ([table.schema] if table.schema else []) + [table.name]
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def _as_loaded(attribute, state: str, session: Session) -> Any:
    """State name `state` as the attribute holds it when loaded: an int for
    an integer column, an enum member for an Enum mapped to a Python enum,
    the name itself otherwise."""
    column_type = attribute.columns[0].type
    try:
        if column_type.python_type is int:
            return int(state)
    except NotImplementedError:
        pass
    process = column_type.result_processor(session.get_bind().dialect, None)
    return process(state) if process else state


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
