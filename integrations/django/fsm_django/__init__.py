"""Django integration of the `fsm` PostgreSQL extension.

The database enforces the machine; this package only makes it pleasant
to use from Django: migration operations that attach a machine
(`fsm_django.operations`), a model mixin that fires events and reads
history (`fsm_django.models.FSMModelMixin`), and exceptions built from
the SQLSTATE and PostgreSQL's standard error fields
(`fsm_django.exceptions`).
"""

from fsm_django.exceptions import (  # noqa: F401
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
)
