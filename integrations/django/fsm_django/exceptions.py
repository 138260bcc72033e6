"""fsm's refusals as exceptions: those of fsm_client (integrations/python),
shared with the SQLAlchemy integration, under the Django package's name."""

from fsm_client.exceptions import (  # noqa: F401
    BY_SQLSTATE,
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
