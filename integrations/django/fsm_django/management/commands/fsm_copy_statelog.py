"""manage.py fsm_copy_statelog app_label.Model [--field FIELD] [--database DB]

Copies django-fsm-log's StateLog rows of a model into the history table of
the fsm machine attached to it (see fsm_django.from_django_fsm_log). Run it
again at will: rows already copied are not copied twice."""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from fsm_django.from_django_fsm_log import copy_state_log


class Command(BaseCommand):
    help = "Copy django-fsm-log StateLog rows into an fsm history table"

    def add_arguments(self, parser):
        parser.add_argument("model", help="app_label.Model")
        parser.add_argument("--field", help="the state field, when the table carries several machines")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, model, field=None, database=DEFAULT_DB_ALIAS, **options):
        try:
            cls = apps.get_model(model)
        except (LookupError, ValueError) as error:
            raise CommandError(str(error)) from error
        column = None
        if field is not None:
            try:
                column = cls._meta.get_field(field).column
            except Exception as error:
                raise CommandError(str(error)) from error
        try:
            copied = copy_state_log(cls, column, using=database)
        except (LookupError, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"{copied.history}: {copied.written} rows copied of {copied.read} read"
            + (f", {copied.skipped} of another field's transitions left out" if copied.skipped else "")
        )
