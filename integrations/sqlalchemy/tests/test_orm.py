"""FSMMixin against a real server: fire, refusals as exceptions with the
error fields, asking, history, integer and enum columns, several machines."""

from __future__ import annotations

import enum
import json
import uuid

from sqlalchemy import BigInteger, Enum, Integer, String, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from fsm_client.exceptions import (
    AmbiguousMachine,
    EntityNotFound,
    GuardRefused,
    InvalidPayload,
    PermissionDenied,
    StateChanged,
    TransitionNotAllowed,
    from_database_error,
)
from fsm_sqlalchemy.orm import AvailableEvent, FSMMixin

from machines import LEVEL, ORDER, ORDER_TABLE
from support import DatabaseTestCase


class Base(DeclarativeBase):
    pass


class Order(FSMMixin, Base):
    __tablename__ = "orders"
    __fsm_column__ = "status"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str | None] = mapped_column(String)
    tracking: Mapped[str | None] = mapped_column(String)


class Ticket(FSMMixin, Base):
    __tablename__ = "tickets"
    __fsm_column__ = "level"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[int | None] = mapped_column(Integer)


class Light(enum.Enum):
    green = "green"
    amber = "amber"
    red = "red"


class Signal(FSMMixin, Base):
    __tablename__ = "signals"
    __fsm_column__ = "light"
    name: Mapped[str] = mapped_column(String, primary_key=True)
    light: Mapped[Light | None] = mapped_column(Enum(Light, name="light", create_type=False))


class Parcel(FSMMixin, Base):
    """Two machines on one table; no default column."""

    __tablename__ = "parcels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment: Mapped[str | None] = mapped_column(String)
    delivery: Mapped[str | None] = mapped_column(String)


TWO_STEP = {
    "states": {"open": {"initial": True}, "done": {"final": True}},
    "events": {"close": {"from": "open", "to": "done"}},
}


class FSMMixinTests(DatabaseTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        with cls.engine.begin() as c:
            c.execute(text(ORDER_TABLE))
            c.execute(text("SELECT fsm.create_machine('order', CAST(:d AS jsonb))"), dict(d=json.dumps(ORDER)))
            c.execute(text("SELECT fsm.attach('orders', 'status', 'order', protect => true)"))
            c.execute(text("CREATE TABLE tickets (id int PRIMARY KEY, level int)"))
            c.execute(text("SELECT fsm.create_machine('level', CAST(:d AS jsonb))"), dict(d=json.dumps(LEVEL)))
            c.execute(text("SELECT fsm.attach('tickets', 'level', 'level')"))
            c.execute(text("CREATE TYPE light AS ENUM ('green', 'amber', 'red')"))
            c.execute(text("CREATE TABLE signals (name text PRIMARY KEY, light light)"))
            c.execute(text("""SELECT fsm.create_machine('light', '{"states": {"green": {"initial": true},
                "amber": {}, "red": {}}, "events": {"next": [{"from": "green", "to": "amber"},
                {"from": "amber", "to": "red"}, {"from": "red", "to": "green"}]}}')"""))
            c.execute(text("SELECT fsm.attach('signals', 'light', 'light')"))
            c.execute(text("CREATE TABLE parcels (id int PRIMARY KEY, payment text, delivery text)"))
            c.execute(text("SELECT fsm.create_machine('two_step', CAST(:d AS jsonb))"), dict(d=json.dumps(TWO_STEP)))
            c.execute(text("SELECT fsm.attach('parcels', 'payment', 'two_step')"))
            c.execute(text("SELECT fsm.attach('parcels', 'delivery', 'two_step')"))

    def setUp(self) -> None:
        self.session = Session(self.engine)
        self.addCleanup(self.session.close)

    def new_order(self, key: int) -> Order:
        order = Order(id=key)
        self.session.add(order)
        self.session.commit()
        return order

    def history_rows(self, key: int) -> list[tuple]:
        with self.engine.connect() as c:
            return [tuple(row) for row in c.execute(text(
                "SELECT event, from_state, to_state, payload, actor, idempotency_key FROM orders_status_history "
                "WHERE entity_key = :k ORDER BY id"), dict(k=key))]

    # -- fire ---------------------------------------------------------------

    def test_insert_takes_the_initial_state(self) -> None:
        order = self.new_order(1)
        self.assertEqual(order.status, "new")
        self.assertEqual(self.history_rows(1), [(None, None, "new", None, None, None)])

    def test_fire_moves_sets_the_attribute_and_records_history(self) -> None:
        order = self.new_order(2)
        self.session.execute(text("SET LOCAL fsm.actor = 'alice'"))
        self.assertEqual(order.fire("pay", payload={"amount": 12.5}), "paid")
        self.assertEqual(order.status, "paid")
        # Set as loaded: nothing for the session to flush.
        self.assertFalse(self.session.dirty)
        self.session.commit()
        self.assertEqual(self.history_rows(2), [
            (None, None, "new", None, None, None),
            ("pay", "new", "paid", {"amount": 12.5}, "alice", None),
        ])
        self.assertEqual([(h.event, h.from_state, h.to_state, h.payload, h.actor) for h in order.history()], [
            ("pay", "new", "paid", {"amount": 12.5}, "alice"),
            (None, None, "new", None, None),
        ])
        self.assertIsInstance(order.history()[0].id, uuid.UUID)
        self.assertEqual(len(order.history(limit=1)), 1)

    def test_refusal_raises_with_error_fields_and_leaves_the_session_usable(self) -> None:
        order = self.new_order(3)
        with self.assertRaises(TransitionNotAllowed) as caught:
            order.fire("deliver")
        e = caught.exception
        self.assertEqual((e.sqlstate, e.schema, e.table, e.column, e.machine, e.event),
                         ("55000", "public", "orders", "status", "order", "deliver"))
        self.assertEqual(e.state, "new")
        self.assertEqual(e.allowed_events, ["cancel", "pay"])
        self.assertIn('"deliver"', e.message)
        # The savepoint took the refusal: the same transaction goes on.
        self.assertEqual(order.fire("cancel"), "cancelled")
        self.session.commit()
        self.assertEqual([r[:3] for r in self.history_rows(3)],
                         [(None, None, "new"), ("cancel", "new", "cancelled")])

    def test_each_refusal_has_its_exception(self) -> None:
        order = self.new_order(4)
        with self.assertRaises(InvalidPayload) as caught:
            order.fire("pay", payload={"amount": "ten"})
        self.assertEqual((caught.exception.sqlstate, caught.exception.event), ("22023", "pay"))
        with self.assertRaises(StateChanged):
            order.fire("pay", payload={"amount": 1}, expect="paid")
        order.fire("pay", payload={"amount": 1})
        with self.assertRaises(GuardRefused) as caught:
            order.fire("ship")
        self.assertEqual((caught.exception.sqlstate, caught.exception.machine, caught.exception.state),
                         ("23514", "order", "paid"))
        order.tracking = "TRACK-1"
        self.assertEqual(order.fire("ship"), "shipped")  # the pending change is flushed first
        self.session.commit()
        self.assertEqual([r[:3] for r in self.history_rows(4)],
                         [(None, None, "new"), ("pay", "new", "paid"), ("ship", "paid", "shipped")])

    def test_missing_row_is_entity_not_found(self) -> None:
        ghost = self.new_order(5)
        with self.engine.begin() as c:
            c.execute(text("DELETE FROM orders WHERE id = 5"))
        with self.assertRaises(EntityNotFound) as caught:
            ghost.fire("pay", payload={"amount": 1})
        self.assertEqual(caught.exception.sqlstate, "P0002")

    def test_idempotency_key_moves_once(self) -> None:
        order = self.new_order(6)
        self.assertEqual(order.fire("pay", payload={"amount": 3}, idempotency_key="req-6"), "paid")
        self.session.commit()
        # The retry of the same request: same answer, nothing written.
        self.assertEqual(order.fire("pay", payload={"amount": 3}, idempotency_key="req-6"), "paid")
        self.session.commit()
        self.assertEqual(self.history_rows(6)[1:], [("pay", "new", "paid", {"amount": 3}, None, "req-6")])
        other = self.new_order(7)
        with self.assertRaises(InvalidPayload):
            other.fire("pay", payload={"amount": 3}, idempotency_key="req-6")

    def test_direct_change_of_a_protected_column_is_permission_denied(self) -> None:
        order = self.new_order(8)
        order.status = "paid"
        with self.assertRaises(DBAPIError) as caught:
            self.session.flush()
        refusal = from_database_error(caught.exception)
        self.assertIsInstance(refusal, PermissionDenied)
        self.assertEqual((refusal.table, refusal.column), ("orders", "status"))
        self.session.rollback()

    def test_asking(self) -> None:
        order = self.new_order(9)
        self.assertTrue(order.can_fire("pay", payload={"amount": 1}))
        self.assertFalse(order.can_fire("pay", payload={}))
        self.assertFalse(order.can_fire("ship"))
        events = {e.event: e for e in order.available_events()}
        self.assertEqual(sorted(events), ["cancel", "deliver", "pay", "ship"])
        self.assertEqual(events["cancel"], AvailableEvent("cancel", ["cancelled"], True, None))
        self.assertFalse(events["ship"].allowed)
        self.assertIsNotNone(events["ship"].reason)
        self.assertEqual(order.allowed_events(), ["cancel", "pay"])

    def test_integer_column_gets_an_int(self) -> None:
        ticket = Ticket(id=1)
        self.session.add(ticket)
        self.session.commit()
        self.assertEqual(ticket.level, 1)
        self.assertEqual(ticket.fire("raise"), "2")
        self.assertEqual(ticket.level, 2)
        self.assertFalse(self.session.dirty)

    def test_enum_column_gets_the_python_enum(self) -> None:
        signal = Signal(name="north")
        self.session.add(signal)
        self.session.commit()
        self.assertIs(signal.light, Light.green)
        self.assertEqual(signal.fire("next"), "amber")
        self.assertIs(signal.light, Light.amber)
        self.session.commit()
        self.session.expire_all()
        self.assertIs(signal.light, Light.amber)

    def test_several_machines_need_col(self) -> None:
        parcel = Parcel(id=1)
        self.session.add(parcel)
        self.session.commit()
        with self.assertRaises(AmbiguousMachine) as caught:
            parcel.fire("close")
        self.assertEqual(caught.exception.sqlstate, "42725")
        self.assertEqual(parcel.fire("close", col="delivery"), "done")
        self.assertEqual((parcel.payment, parcel.delivery), ("open", "done"))
        self.assertEqual([h.event for h in parcel.history(col="delivery")], ["close", None])
        self.assertEqual([h.event for h in parcel.history(col="payment")], [None])

    def test_an_object_outside_a_session_is_refused(self) -> None:
        with self.assertRaises(ValueError):
            Order(id=99).fire("pay")
