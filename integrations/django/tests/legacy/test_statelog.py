"""Copying django-fsm-log's StateLog into fsm history: exact rows, ids in
the log's order at its timestamps, a second run that adds nothing, and the
refusals."""

import json
from datetime import datetime, timezone
from io import StringIO

from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import TestCase
from django_fsm_log.models import StateLog

from fsm_django.from_django_fsm_log import uuid7_of
from legacy.models import Report


def copy(*args):
    out = StringIO()
    call_command("fsm_copy_statelog", *args, stdout=out)
    return out.getvalue().strip()


def machines_for(label):
    out = StringIO()
    call_command("fsm_from_django_fsm", label, stdout=out)
    return json.loads(out.getvalue())


def history(column):
    with connection.cursor() as c:
        c.execute(
            f"SELECT id, fsm.uuid7_time(id), entity_key, event, from_state, to_state, payload, actor, "
            f"machine_version FROM legacy_report_{column}_history WHERE event IS NOT NULL ORDER BY id"
        )
        # Django's backend hands jsonb over as its text.
        return [(*r[:6], json.loads(r[6]) if r[6] else None, *r[7:]) for r in c.fetchall()]


class StateLogCopyTests(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")
        self.bob = User.objects.create_user("bob")
        # The past, under django-fsm-2 and django-fsm-log.
        self.first, self.second = Report.objects.create(), Report.objects.create()
        self.first.send(by=self.ada, description="first draft")
        self.first.save()
        self.first.approve(by=self.bob)
        self.first.save()
        self.first.file()
        self.first.save()
        at = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
        kind = ContentType.objects.get_for_model(Report)
        # Two moves logged in one millisecond: the log's order is kept.
        for source, target in [("draft", "sent"), ("sent", "filed")]:
            StateLog.objects.create(
                timestamp=at, content_type=kind, object_id=self.second.pk,
                source_state=source, state=target, transition="send" if target == "sent" else "file",
            )
        # Then fsm is attached to both fields.
        with connection.cursor() as c:
            for m in machines_for("legacy.Report"):
                c.execute("SELECT fsm.create_machine(%s, %s::jsonb)", [m["machine"], json.dumps(m["definition"])])
                c.execute("SELECT fsm.attach('legacy_report', %s, %s)", [m["model"].rsplit(".", 1)[1], m["machine"]])

    def expected(self, transitions):
        logs = StateLog.objects.filter(transition__in=transitions).order_by("timestamp", "pk")
        return [
            (
                uuid7_of(log.timestamp, log.pk),
                log.timestamp.replace(microsecond=log.timestamp.microsecond // 1000 * 1000),
                log.object_id, log.transition, log.source_state, log.state,
                {"description": log.description} if log.description else None,
                log.by.username if log.by else None,
                None,
            )
            for log in logs
        ]

    def test_copy_is_exact_ordered_and_runs_once(self):
        self.assertEqual(
            copy("legacy.Report", "--field", "state"),
            "legacy_report_state_history: 4 rows copied of 5 read, 1 of another field's transitions left out",
        )
        rows = history("state")
        self.assertEqual(rows, self.expected(["send", "file"]))
        self.assertEqual(
            [(r[2], r[3], r[4], r[5], r[7]) for r in rows],
            [
                (self.second.pk, "send", "draft", "sent", None),
                (self.second.pk, "file", "sent", "filed", None),
                (self.first.pk, "send", "draft", "sent", "ada"),
                (self.first.pk, "file", "sent", "filed", None),
            ],
        )
        self.assertEqual(rows[2][6], {"description": "first draft"})
        self.assertEqual(
            copy("legacy.Report", "--field", "state"),
            "legacy_report_state_history: 0 rows copied of 5 read, 1 of another field's transitions left out",
        )
        self.assertEqual(history("state"), rows)
        # fsm's own readers see them.
        with connection.cursor() as c:
            c.execute("SELECT event, actor FROM fsm.history('legacy_report', %s, col => 'state') "
                      "WHERE event IS NOT NULL ORDER BY id", [self.first.pk])
            self.assertEqual(c.fetchall(), [("send", "ada"), ("file", None)])

    def test_the_other_field(self):
        self.assertIn("1 rows copied of 5 read", copy("legacy.Report", "--field", "review"))
        self.assertEqual(history("review"), self.expected(["approve"]))

    def test_refusals(self):
        with self.assertRaisesMessage(CommandError, "several machines (review, state): name the field"):
            copy("legacy.Report")
        with self.assertRaisesMessage(CommandError, "no fsm machine is attached to legacy_ticket"):
            copy("legacy.Ticket")
        with self.assertRaises(CommandError):
            copy("legacy.Report", "--field", "nope")
        with self.assertRaises(CommandError):
            copy("legacy.Nope")
        self.assertEqual(history("state"), [])

    def test_uuid7_layout_matches_fsm(self):
        at = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
        with connection.cursor() as c:
            c.execute("SELECT fsm.uuid7(%s), fsm.uuid7_time(%s)", [at, uuid7_of(at, (1 << 74) - 1)])
            smallest, time = c.fetchone()
        self.assertEqual(uuid7_of(at, 0), smallest)
        self.assertEqual(time, at.replace(microsecond=123000))
        with self.assertRaises(ValueError):
            uuid7_of(at.replace(tzinfo=None), 0)
        with self.assertRaises(ValueError):
            uuid7_of(at, 1 << 74)
