from django.db import models

from fsm_django.models import FSMModelMixin


class Order(FSMModelMixin, models.Model):
    status = models.TextField(null=True)
    tracking = models.TextField(null=True)
    quantity = models.IntegerField(default=1)
    fsm_field = "status"

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(quantity__gt=0), name="order_quantity_positive")]
