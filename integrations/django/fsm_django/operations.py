"""Migration operations: store a machine, attach it to a model's field.

    from fsm_django.operations import CreateMachine, AttachMachine

    operations = [
        CreateMachine("order", ORDER_MACHINE),            # a dict, or a JSON string
        AttachMachine("order", "status", machine="order", protect=True),
    ]

Both are reversible: AttachMachine's reverse detaches and drops the
history table it created; CreateMachine's reverse drops the machine
(refused by fsm while a table is still attached to it, so reverse the
AttachMachine first, as migrations do).
"""

from __future__ import annotations

import json
from typing import Any

from django.db.migrations.operations.base import Operation


class CreateMachine(Operation):
    """fsm.create_machine(name, definition, replace)."""

    reversible = True
    reduces_to_sql = True

    def __init__(self, name: str, definition: dict | str, replace: bool = False):
        self.name = name
        self.definition = definition if isinstance(definition, str) else json.dumps(definition)
        self.replace = replace

    def deconstruct(self) -> tuple[str, list, dict[str, Any]]:
        kwargs: dict[str, Any] = {"name": self.name, "definition": self.definition}
        if self.replace:
            kwargs["replace"] = True
        return (self.__class__.__qualname__, [], kwargs)

    def state_forwards(self, app_label, state) -> None:
        pass  # a machine is no model state

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        schema_editor.execute(
            "SELECT fsm.create_machine(%s, %s::pg_catalog.jsonb, replace => %s)",
            [self.name, self.definition, self.replace],
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        schema_editor.execute("SELECT fsm.drop_machine(%s)", [self.name])

    def describe(self) -> str:
        return f"Create state machine {self.name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"create_machine_{self.name}"


class AttachMachine(Operation):
    """fsm.attach(model's table, field's column, machine, protect, notify)."""

    reversible = True
    reduces_to_sql = True

    def __init__(
        self,
        model_name: str,
        field_name: str,
        machine: str,
        protect: bool = False,
        notify: str | None = None,
    ):
        self.model_name = model_name
        self.field_name = field_name
        self.machine = machine
        self.protect = protect
        self.notify = notify

    def deconstruct(self) -> tuple[str, list, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "model_name": self.model_name,
            "field_name": self.field_name,
            "machine": self.machine,
        }
        if self.protect:
            kwargs["protect"] = True
        if self.notify is not None:
            kwargs["notify"] = self.notify
        return (self.__class__.__qualname__, [], kwargs)

    def state_forwards(self, app_label, state) -> None:
        pass  # the binding lives in the database, not in the model state

    def _table_and_column(self, app_label, schema_editor, state) -> tuple[str, str]:
        model = state.apps.get_model(app_label, self.model_name)
        column = model._meta.get_field(self.field_name).column
        return schema_editor.quote_name(model._meta.db_table), column

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        table, column = self._table_and_column(app_label, schema_editor, to_state)
        schema_editor.execute(
            "SELECT fsm.attach(%s::pg_catalog.regclass, %s, %s, protect => %s, notify => %s)",
            [table, column, self.machine, self.protect, self.notify],
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        table, column = self._table_and_column(app_label, schema_editor, from_state)
        schema_editor.execute(
            "SELECT fsm.detach(%s::pg_catalog.regclass, %s, drop_history => true)",
            [table, column],
        )

    def describe(self) -> str:
        return f"Attach state machine {self.machine} to {self.model_name}.{self.field_name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"attach_{self.machine}_{self.model_name.lower()}_{self.field_name}"
