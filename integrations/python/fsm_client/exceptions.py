"""Exceptions raised from fsm's refusals.

fsm gives every kind of refusal its own SQLSTATE (API.md §3) and sets
PostgreSQL's standard error fields on every refused transition:
`schema_name`, `table_name`, `column_name` (the state column) and
`constraint_name` = `<machine>:<event>` (or `<machine>`). They are read
here from psycopg's `Diagnostic`, never parsed out of the message text.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class FsmError(Exception):
    """A refusal by fsm. `state` and `allowed_events` are filled in by
    the integrations' model mixins, which read them after the refusal (the
    refused statement itself changed nothing)."""

    message: str
    sqlstate: str
    detail: str | None = None
    hint: str | None = None
    schema: str | None = None
    table: str | None = None
    column: str | None = None
    machine: str | None = None
    event: str | None = None
    state: str | None = None
    allowed_events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class TransitionNotAllowed(FsmError):
    """55000: the event does not lead from the current state (or an INSERT
    is not in the initial state)."""


class GuardRefused(FsmError):
    """23514: the event's guard said no."""


class PermissionDenied(FsmError):
    """42501: a role the event needs is missing, or a protected column was
    changed directly."""


class InvalidPayload(FsmError):
    """22023: the payload fails its schema, `to` is not among the targets,
    or an idempotency key was reused for another entity or event."""


class StateChanged(FsmError):
    """40001: `expect` does not match the current state."""


class EntityNotFound(FsmError):
    """P0002: no row has that key."""


class UnknownName(FsmError):
    """42704: unknown machine, event or binding."""


class MissingArgument(FsmError):
    """22004: a required argument is NULL."""


class AmbiguousMachine(FsmError):
    """42725: the event is in several machines of the table and no `col`
    says which."""


BY_SQLSTATE: dict[str, type[FsmError]] = {
    "55000": TransitionNotAllowed,
    "23514": GuardRefused,
    "42501": PermissionDenied,
    "22023": InvalidPayload,
    "40001": StateChanged,
    "P0002": EntityNotFound,
    "42704": UnknownName,
    "22004": MissingArgument,
    "42725": AmbiguousMachine,
}


def from_database_error(error: BaseException) -> FsmError | None:
    """The FsmError for `error` (a psycopg error, or a Django or SQLAlchemy
    error that wraps one), or None when fsm did not raise it.

    fsm raises its errors from its own code, whose error location names
    the function `fsm`; errors of the same SQLSTATEs that PostgreSQL
    raises itself (a CHECK constraint of the table, a missing table
    privilege) are left to the caller as they are."""
    cause = error
    while cause is not None and not hasattr(cause, "diag"):
        # SQLAlchemy keeps the driver's error in `orig`, Django in the cause.
        cause = getattr(cause, "orig", None) or cause.__cause__
    if cause is None or cause.diag.source_function != "fsm":
        return None
    sqlstate = cause.sqlstate or ""
    diag = cause.diag
    machine, _, event = (diag.constraint_name or "").partition(":")
    return BY_SQLSTATE.get(sqlstate, FsmError)(
        message=diag.message_primary or str(cause),
        sqlstate=sqlstate,
        detail=diag.message_detail,
        hint=diag.message_hint,
        schema=diag.schema_name,
        table=diag.table_name,
        column=diag.column_name,
        machine=machine or None,
        event=event or None,
    )
