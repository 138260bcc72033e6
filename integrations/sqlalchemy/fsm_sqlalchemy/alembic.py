"""Alembic operations: `op.create_machine`, `op.drop_machine`,
`op.attach_machine`, `op.detach_machine`. Importing this module (in
env.py, or in the migration) registers them.

    import fsm_sqlalchemy.alembic  # noqa: F401

    def upgrade():
        op.execute("CREATE EXTENSION IF NOT EXISTS fsm")
        op.create_table("orders", ...)
        op.create_machine("order", ORDER)
        op.attach_machine("orders", "status", "order", protect=True)

    def downgrade():
        op.detach_machine("orders", "status")   # drops its history table
        op.drop_machine("order")
        op.drop_table("orders")

Every value goes to the server as a bound parameter (rendered as a
literal in `alembic upgrade --sql`); the table's name is given to
`fsm.attach` as a regclass, quoted by PostgreSQL's own `quote_ident`.
"""

from __future__ import annotations

import json
from typing import Any

from alembic.operations import MigrateOperation, Operations
from sqlalchemy import text


def _definition_text(definition: dict | str) -> str:
    return definition if isinstance(definition, str) else json.dumps(definition)


def _regclass_sql(param: str, schema_param: str) -> str:
    """SQL for the regclass of table :param in schema :schema_param (or on
    the search_path when it is NULL)."""
    return (
        f"CAST(pg_catalog.concat_ws('.', pg_catalog.quote_ident(:{schema_param}), "
        f"pg_catalog.quote_ident(:{param})) AS pg_catalog.regclass)"
    )


@Operations.register_operation("create_machine")
class CreateMachineOp(MigrateOperation):
    """fsm.create_machine(name, definition, replace)."""

    def __init__(self, name: str, definition: dict | str, replace: bool = False):
        self.name, self.definition, self.replace = name, definition, replace

    @classmethod
    def create_machine(cls, operations, name: str, definition: dict | str, replace: bool = False) -> Any:
        return operations.invoke(cls(name, definition, replace))

    def reverse(self) -> "DropMachineOp":
        return DropMachineOp(self.name, self.definition)


@Operations.register_operation("drop_machine")
class DropMachineOp(MigrateOperation):
    """fsm.drop_machine(name); `definition`, when given, makes it reversible."""

    def __init__(self, name: str, definition: dict | str | None = None):
        self.name, self.definition = name, definition

    @classmethod
    def drop_machine(cls, operations, name: str, definition: dict | str | None = None) -> Any:
        return operations.invoke(cls(name, definition))

    def reverse(self) -> CreateMachineOp:
        if self.definition is None:
            raise ValueError(f"drop_machine({self.name!r}) without its definition cannot be reversed")
        return CreateMachineOp(self.name, self.definition)


@Operations.register_operation("attach_machine")
class AttachMachineOp(MigrateOperation):
    """fsm.attach(table, column, machine, protect, notify)."""

    def __init__(
        self, table: str, column: str, machine: str, protect: bool = False, notify: str | None = None,
        schema: str | None = None,
    ):
        self.table, self.column, self.machine = table, column, machine
        self.protect, self.notify, self.schema = protect, notify, schema

    @classmethod
    def attach_machine(
        cls, operations, table: str, column: str, machine: str, protect: bool = False,
        notify: str | None = None, schema: str | None = None,
    ) -> Any:
        return operations.invoke(cls(table, column, machine, protect, notify, schema))

    def reverse(self) -> "DetachMachineOp":
        return DetachMachineOp(self.table, self.column, schema=self.schema, machine=self.machine,
                               protect=self.protect, notify=self.notify)


@Operations.register_operation("detach_machine")
class DetachMachineOp(MigrateOperation):
    """fsm.detach(table, column, drop_history => true): the history table
    attach made goes with the binding, as a downgrade should leave things."""

    def __init__(
        self, table: str, column: str, schema: str | None = None, machine: str | None = None,
        protect: bool = False, notify: str | None = None,
    ):
        self.table, self.column, self.schema = table, column, schema
        self.machine, self.protect, self.notify = machine, protect, notify

    @classmethod
    def detach_machine(cls, operations, table: str, column: str, schema: str | None = None) -> Any:
        return operations.invoke(cls(table, column, schema))

    def reverse(self) -> AttachMachineOp:
        if self.machine is None:
            raise ValueError(f"detach_machine({self.table!r}, {self.column!r}) does not know the machine to attach")
        return AttachMachineOp(self.table, self.column, self.machine, self.protect, self.notify, self.schema)


@Operations.implementation_for(CreateMachineOp)
def _create_machine(operations, op: CreateMachineOp) -> None:
    operations.execute(
        text("SELECT fsm.create_machine(:name, CAST(:definition AS jsonb), :replace)").bindparams(
            name=op.name, definition=_definition_text(op.definition), replace=op.replace
        )
    )


@Operations.implementation_for(DropMachineOp)
def _drop_machine(operations, op: DropMachineOp) -> None:
    operations.execute(text("SELECT fsm.drop_machine(:name)").bindparams(name=op.name))


@Operations.implementation_for(AttachMachineOp)
def _attach_machine(operations, op: AttachMachineOp) -> None:
    operations.execute(
        text(
            f"SELECT fsm.attach({_regclass_sql('tbl', 'schema')}, :col, :machine, "
            "protect => :protect, notify => :notify)"
        ).bindparams(tbl=op.table, schema=op.schema, col=op.column, machine=op.machine,
                     protect=op.protect, notify=op.notify)
    )


@Operations.implementation_for(DetachMachineOp)
def _detach_machine(operations, op: DetachMachineOp) -> None:
    operations.execute(
        text(f"SELECT fsm.detach({_regclass_sql('tbl', 'schema')}, :col, drop_history => true)").bindparams(
            tbl=op.table, schema=op.schema, col=op.column
        )
    )
