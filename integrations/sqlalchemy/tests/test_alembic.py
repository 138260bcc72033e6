"""The Alembic operations: a migration that creates and attaches a machine
(on a schema and table whose names need quoting) and its downgrade; the
operations' reverses; offline (--sql) rendering."""

from __future__ import annotations

import io
import os

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fsm_client.exceptions import PermissionDenied, TransitionNotAllowed, from_database_error
from fsm_sqlalchemy.alembic import AttachMachineOp, CreateMachineOp, DetachMachineOp, DropMachineOp

from support import DatabaseTestCase, url

HERE = os.path.dirname(os.path.abspath(__file__))


class AlembicTests(DatabaseTestCase):
    def config(self, output: io.StringIO | None = None) -> Config:
        cfg = Config(output_buffer=output)
        cfg.set_main_option("script_location", os.path.join(HERE, "migrations"))
        cfg.set_main_option("sqlalchemy.url", url(self.database).render_as_string(hide_password=False))
        return cfg

    def bindings(self) -> list[tuple]:
        with self.engine.connect() as c:
            return [tuple(r) for r in c.execute(text(
                "SELECT tbl::text, col::text, machine, history::text, protect, notify FROM fsm.bindings ORDER BY 1"))]

    def test_upgrade_attaches_and_downgrade_leaves_nothing(self) -> None:
        command.upgrade(self.config(), "head")
        self.assertEqual(self.bindings(), [
            ('"Shop floor"."Order\'s"', "status", "order", '"Shop floor"."Order\'s_status_history"', True, "orders"),
        ])
        with self.engine.begin() as c:
            c.execute(text('INSERT INTO "Shop floor"."Order\'s" (id) VALUES (1)'))
            self.assertEqual(c.execute(text(
                """SELECT fsm.fire('"Shop floor"."Order''s"', 1, 'pay')""")).scalar(), "paid")
        # protect => true reached the server: a direct change is refused.
        with self.assertRaises(DBAPIError) as caught, self.engine.begin() as c:
            c.execute(text('UPDATE "Shop floor"."Order\'s" SET status = \'cancelled\''))
        self.assertIsInstance(from_database_error(caught.exception), PermissionDenied)

        command.downgrade(self.config(), "base")
        self.assertEqual(self.bindings(), [])
        with self.engine.connect() as c:
            self.assertEqual(c.execute(text(
                "SELECT count(*) FROM fsm.machines WHERE name = 'order'")).scalar(), 0)
            self.assertIsNone(c.execute(text(
                "SELECT to_regclass('\"Shop floor\".\"Order''s_status_history\"')")).scalar())

    def test_operations_reverse_each_other(self) -> None:
        machine = {"states": {"a": {"initial": True}, "b": {}}, "events": {"go": {"from": "a", "to": "b"}}}
        with self.engine.begin() as c:
            c.execute(text("CREATE TABLE things (id int PRIMARY KEY, state text)"))
            op = Operations(MigrationContext.configure(c))
            create = CreateMachineOp("thing", machine)
            attach = AttachMachineOp("things", "state", "thing")
            op.invoke(create)
            op.invoke(attach)
            c.execute(text("INSERT INTO things VALUES (1)"))
            with self.assertRaises(DBAPIError) as caught, c.begin_nested():
                c.execute(text("UPDATE things SET state = 'a' || 'x'"))
            self.assertIsInstance(from_database_error(caught.exception), TransitionNotAllowed)
            detach = attach.reverse()
            self.assertIsInstance(detach, DetachMachineOp)
            op.invoke(detach)
            # Detached: the column takes any value; the history went with it.
            c.execute(text("UPDATE things SET state = 'anything'"))
            self.assertIsNone(c.execute(text("SELECT to_regclass('things_state_history')")).scalar())
            # ... and the reverse of the reverse attaches again.
            c.execute(text("UPDATE things SET state = 'a'"))
            op.invoke(detach.reverse())
            self.assertEqual(c.execute(text("SELECT fsm.fire('things', 1, 'go')")).scalar(), "b")
            op.invoke(detach)
            drop = create.reverse()
            self.assertIsInstance(drop, DropMachineOp)
            op.invoke(drop)
            self.assertEqual(c.execute(text("SELECT count(*) FROM fsm.machines WHERE name = 'thing'")).scalar(), 0)
            c.execute(text("DROP TABLE things"))
        with self.assertRaises(ValueError):
            DropMachineOp("thing").reverse()
        with self.assertRaises(ValueError):
            DetachMachineOp("things", "state").reverse()

    def test_offline_sql_renders_literals(self) -> None:
        out = io.StringIO()
        command.upgrade(self.config(out), "head", sql=True)
        sql = out.getvalue()
        self.assertIn("SELECT fsm.create_machine('order', CAST('{\"states\": {\"new\": {\"initial\": true}", sql)
        self.assertIn(
            "SELECT fsm.attach(CAST(pg_catalog.concat_ws('.', pg_catalog.quote_ident('Shop floor'), "
            "pg_catalog.quote_ident('Order''s')) AS pg_catalog.regclass), 'status', 'order', "
            "protect => true, notify => 'orders')",
            sql,
        )
        # Nothing ran.
        self.assertEqual(self.bindings(), [])
