"""What every Python client of the `fsm` PostgreSQL extension shares: the
exceptions built from fsm's SQLSTATEs and error fields. The Django and
SQLAlchemy integrations raise these same classes."""

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
