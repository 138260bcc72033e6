"""The integration against a real fsm: exact states, exact history rows,
exact exceptions."""

from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test import TestCase, TransactionTestCase

from fsm_django import (
    EntityNotFound,
    GuardRefused,
    InvalidPayload,
    StateChanged,
    TransitionNotAllowed,
    UnknownName,
)
from fsm_django.exceptions import from_database_error
from fsm_django.models import AvailableEvent
from shop.models import Order


def history_rows(order):
    return [(h.event, h.from_state, h.to_state, h.payload) for h in order.history()]


class FireTests(TestCase):
    def test_insert_sets_the_initial_state_and_records_it(self):
        order = Order.objects.create()
        order.refresh_from_db()
        self.assertEqual(order.status, "created")
        self.assertEqual(history_rows(order), [(None, None, "created", None)])

    def test_fire_moves_refreshes_and_records_the_payload(self):
        order = Order.objects.create()
        self.assertEqual(order.fire("pay", payload={"amount": 10}), "paid")
        self.assertEqual(order.status, "paid")
        self.assertEqual(
            history_rows(order),
            [("pay", "created", "paid", {"amount": 10}), (None, None, "created", None)],
        )

    def test_refusal_carries_fields_state_and_allowed_events(self):
        order = Order.objects.create()
        with self.assertRaises(TransitionNotAllowed) as caught:
            order.fire("deliver")
        e = caught.exception
        self.assertEqual(e.sqlstate, "55000")
        self.assertEqual((e.schema, e.table, e.column), ("public", "shop_order", "status"))
        self.assertEqual((e.machine, e.event), ("shop_order", "deliver"))
        self.assertEqual(e.state, "created")
        self.assertEqual(e.allowed_events, ["cancel", "pay"])
        # The refusal changed nothing and left the transaction usable.
        order.refresh_from_db()
        self.assertEqual(order.status, "created")
        self.assertEqual(len(order.history()), 1)
        self.assertEqual(order.fire("cancel"), "cancelled")

    def test_plain_update_is_enforced_and_translated_by_the_helper(self):
        order = Order.objects.create()
        with self.assertRaises(DatabaseError) as caught, transaction.atomic():
            Order.objects.filter(pk=order.pk).update(status="delivered")
        refusal = from_database_error(caught.exception)
        self.assertIsInstance(refusal, TransitionNotAllowed)
        self.assertEqual((refusal.machine, refusal.column), ("shop_order", "status"))

    def test_guard_payload_expect_unknown_and_missing_key(self):
        order = Order.objects.create()
        with self.assertRaises(InvalidPayload) as caught:
            order.fire("pay", payload={"amount_missing": True})
        self.assertEqual(caught.exception.sqlstate, "22023")
        order.fire("pay", payload={"amount": 1})
        with self.assertRaises(GuardRefused) as caught:
            order.fire("ship")
        self.assertEqual((caught.exception.sqlstate, caught.exception.event), ("23514", "ship"))
        self.assertEqual(caught.exception.state, "paid")
        with self.assertRaises(StateChanged):
            order.fire("cancel", expect="created")
        with self.assertRaises(UnknownName):
            order.fire("no_such_event")
        ghost = Order(pk=order.pk + 1000)
        with self.assertRaises(EntityNotFound) as caught:
            ghost.fire("pay", payload={"amount": 1})
        self.assertEqual(caught.exception.sqlstate, "P0002")
        Order.objects.filter(pk=order.pk).update(tracking="T1")
        self.assertEqual(order.fire("ship"), "shipped")

    def test_dynamic_target_is_chosen_with_to(self):
        order = Order.objects.create()
        order.fire("pay", payload={"amount": 1})
        with self.assertRaises(InvalidPayload) as caught:
            order.fire("review", to="shipped")
        self.assertEqual((caught.exception.sqlstate, caught.exception.event), ("22023", "review"))
        self.assertEqual(order.fire("review", to="cancelled"), "cancelled")
        self.assertEqual(order.status, "cancelled")
        self.assertEqual(
            history_rows(order),
            [("review", "paid", "cancelled", None), ("pay", "created", "paid", {"amount": 1}),
             (None, None, "created", None)],
        )

    def test_idempotency_key_moves_once(self):
        order = Order.objects.create()
        self.assertEqual(order.fire("pay", {"amount": 5}, idempotency_key="req-1"), "paid")
        self.assertEqual(order.fire("pay", {"amount": 5}, idempotency_key="req-1"), "paid")
        self.assertEqual([h.event for h in order.history()], ["pay", None])
        with self.assertRaises(InvalidPayload):
            order.fire("cancel", idempotency_key="req-1")

    def test_asking(self):
        order = Order.objects.create()
        self.assertTrue(order.can_fire("pay", {"amount": 1}))
        self.assertFalse(order.can_fire("deliver"))
        events = {e.event: e for e in order.available_events()}
        self.assertEqual(sorted(events), ["cancel", "deliver", "pay", "review", "ship"])
        self.assertEqual(events["pay"], AvailableEvent("pay", ["paid"], True, None))
        self.assertFalse(events["deliver"].allowed)
        self.assertEqual(order.allowed_events(), ["cancel", "pay"])
        self.assertEqual(order.history(limit=1)[0].to_state, "created")

    def test_errors_fsm_did_not_raise_are_left_alone(self):
        order = Order.objects.create()
        with self.assertRaises(IntegrityError) as caught, transaction.atomic():
            Order.objects.filter(pk=order.pk).update(quantity=0)
        self.assertEqual(caught.exception.__cause__.sqlstate, "23514")
        self.assertIsNone(from_database_error(caught.exception))


class AutocommitTests(TransactionTestCase):
    """Outside any transaction (Django's default), each call is one
    statement and its own transaction."""

    available_apps = ["shop"]

    def test_fire_commits_and_a_refusal_is_explained(self):
        order = Order.objects.create()
        self.assertTrue(connection.get_autocommit())
        self.assertEqual(order.fire("pay", payload={"amount": 5}), "paid")
        self.assertEqual(order.status, "paid")
        self.assertEqual(Order.objects.get(pk=order.pk).status, "paid")
        with self.assertRaises(TransitionNotAllowed) as caught:
            order.fire("pay", payload={"amount": 5})
        self.assertEqual((caught.exception.state, caught.exception.allowed_events), ("paid", ["cancel", "review"]))
        self.assertEqual(
            history_rows(order), [("pay", "created", "paid", {"amount": 5}), (None, None, "created", None)]
        )
        # An instance that was never loaded fires by its key alone.
        self.assertEqual(Order(pk=order.pk).fire("cancel"), "cancelled")
        self.assertEqual(Order.objects.get(pk=order.pk).status, "cancelled")


class MigrationTests(TransactionTestCase):
    available_apps = ["shop"]

    def test_reverse_and_forward(self):
        with connection.cursor() as c:
            c.execute("SELECT count(*) FROM fsm.bindings WHERE machine = 'shop_order'")
            self.assertEqual(c.fetchone()[0], 1)
        call_command("migrate", "shop", "zero", verbosity=0)
        with connection.cursor() as c:
            c.execute("SELECT count(*) FROM fsm.machines WHERE name = 'shop_order'")
            self.assertEqual(c.fetchone()[0], 0)
            c.execute("SELECT pg_catalog.to_regclass('public.shop_order_status_history')")
            self.assertIsNone(c.fetchone()[0])
        call_command("migrate", "shop", verbosity=0)
        order = Order.objects.create()
        self.assertEqual(order.fire("pay", {"amount": 3}), "paid")


class AdminTests(TestCase):
    def setUp(self):
        from django.contrib.auth.models import Permission, User

        self.admin = User.objects.create_superuser("ada", "ada@example.com", "pw")
        self.viewer = User.objects.create_user("vic", "vic@example.com", "pw", is_staff=True)
        self.viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
        self.order = Order.objects.create()

    def url(self, suffix=""):
        return f"/admin/shop/order/{self.order.pk}/change/{suffix}"

    def test_change_page_shows_events_history_and_diagram(self):
        self.client.force_login(self.admin)
        page = self.client.get(self.url()).content.decode()
        self.assertIn('formaction="fsm-fire/pay/"', page)
        # Not allowed from created: the button is disabled with the reason.
        deliver = page[page.index('value="deliver"'):]
        self.assertIn("disabled", deliver[: deliver.index(">")])
        self.assertIn("<td>created</td>", page)
        self.assertIn('<pre class="mermaid">stateDiagram-v2', page)

    def test_button_fires_as_the_user_and_refusals_are_messages(self):
        self.client.force_login(self.admin)
        fire = f"/admin/shop/order/{self.order.pk}/fsm-fire/"
        response = self.client.post(fire + "pay/", {"fsm_payload": '{"amount": 7}'}, follow=True)
        self.assertContains(response, "Fired pay: now paid")
        self.assertContains(response, "<td>{&quot;amount&quot;: 7}</td>")
        self.order.refresh_from_db()
        self.assertEqual(self.order.status, "paid")
        newest = self.order.history()[0]
        self.assertEqual((newest.event, newest.payload, newest.actor), ("pay", {"amount": 7}, "ada"))
        response = self.client.post(fire + "deliver/", follow=True)
        self.assertContains(response, "Refused deliver (55000)")
        response = self.client.post(fire + "cancel/", {"fsm_payload": "{not json"}, follow=True)
        self.assertContains(response, "The payload is not JSON")
        self.order.refresh_from_db()
        self.assertEqual(self.order.status, "paid")
        self.assertEqual(len(self.order.history()), 2)
        self.assertEqual(self.client.get(fire + "cancel/").status_code, 405)

    def test_firing_needs_the_change_permission(self):
        self.client.force_login(self.viewer)
        page = self.client.get(self.url()).content.decode()
        pay = page[page.index('value="pay"'):]
        self.assertIn("disabled", pay[: pay.index(">")])
        response = self.client.post(f"/admin/shop/order/{self.order.pk}/fsm-fire/pay/",
                                    {"fsm_payload": '{"amount": 1}'})
        self.assertEqual(response.status_code, 403)
        self.order.refresh_from_db()
        self.assertEqual(self.order.status, "created")
