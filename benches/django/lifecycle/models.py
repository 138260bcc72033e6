"""The same order twice: under fsm, and under django-fsm-2 + django-fsm-log.
Same columns, same states, same three transitions, no conditions, no
actor, so the two do the same work and only the tool differs."""

from django.db import models
from django_fsm import FSMField, transition
from django_fsm_log.decorators import fsm_log_by

from fsm_django.models import FSMModelMixin

MACHINE = {
    "states": {"created": {"initial": True}, "paid": {}, "shipped": {}, "delivered": {"final": True}},
    "events": {
        "pay": {"from": "created", "to": "paid"},
        "ship": {"from": "paid", "to": "shipped"},
        "deliver": {"from": "shipped", "to": "delivered"},
    },
}


class FsmOrder(FSMModelMixin, models.Model):
    status = models.TextField(null=True)
    amount = models.IntegerField(default=10)
    fsm_field = "status"


class LegacyOrder(models.Model):
    status = FSMField(default="created")
    amount = models.IntegerField(default=10)

    @fsm_log_by
    @transition(field=status, source="created", target="paid")
    def pay(self, by=None):
        pass

    @fsm_log_by
    @transition(field=status, source="paid", target="shipped")
    def ship(self, by=None):
        pass

    @fsm_log_by
    @transition(field=status, source="shipped", target="delivered")
    def deliver(self, by=None):
        pass
