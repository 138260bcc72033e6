"""manage.py fsm_from_django_fsm [app_label[.Model] ...]

Prints, as JSON, one fsm machine definition per django-fsm-2 state field
(every installed model, or those named), with what must be ported by hand
in `to_port`."""

import json

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from fsm_django.from_django_fsm import convert, fsm_fields


class Command(BaseCommand):
    help = "Machine definitions from django-fsm-2 @transition declarations"

    def add_arguments(self, parser):
        parser.add_argument("labels", nargs="*", help="app_label or app_label.Model")

    def handle(self, *args, labels=(), **options):
        models = []
        for label in labels or [None]:
            if label is None:
                models.extend(apps.get_models())
            elif "." in label:
                try:
                    models.append(apps.get_model(label))
                except (LookupError, ValueError) as error:
                    raise CommandError(str(error)) from error
            else:
                try:
                    models.extend(apps.get_app_config(label).get_models())
                except LookupError as error:
                    raise CommandError(str(error)) from error
        out = []
        for model in models:
            for f in fsm_fields(model):
                try:
                    out.append(convert(model, f).as_json())
                except ValueError as error:
                    raise CommandError(str(error)) from error
        self.stdout.write(json.dumps(out, indent=2))
