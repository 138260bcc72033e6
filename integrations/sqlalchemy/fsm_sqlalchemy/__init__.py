"""SQLAlchemy 2 and Alembic integration of the `fsm` PostgreSQL extension.

The database enforces the machine; this package makes it pleasant from
SQLAlchemy: Alembic operations that create and attach a machine
(`fsm_sqlalchemy.alembic`, registered on import), a declarative mixin
that fires events and reads history (`fsm_sqlalchemy.orm.FSMMixin`), and
the exceptions of `fsm_client`, built from the SQLSTATE and PostgreSQL's
error fields.
"""

from fsm_client.exceptions import (  # noqa: F401
    AmbiguousMachine,
    EntityNotFound,
    FsmError,
    GuardRefused,
    InvalidPayload,
    MissingArgument,
    PermissionDenied,
    StateChanged,
    TransitionNotAllowed,
    UnknownName,
    from_database_error,
)
