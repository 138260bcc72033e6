from django.db import migrations, models

from fsm_django.operations import AttachMachine, CreateMachine
from shop.machines import ORDER


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.RunSQL("CREATE EXTENSION IF NOT EXISTS fsm", migrations.RunSQL.noop),
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("status", models.TextField(null=True)),
                ("tracking", models.TextField(null=True)),
                ("quantity", models.IntegerField(default=1)),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(condition=models.Q(quantity__gt=0), name="order_quantity_positive")
                ]
            },
        ),
        # The guard fsm checks at create_machine: the row type must exist first.
        migrations.RunSQL(
            "CREATE FUNCTION public.shop_has_tracking(o public.shop_order, payload jsonb) "
            "RETURNS boolean LANGUAGE sql AS 'SELECT o.tracking IS NOT NULL'",
            "DROP FUNCTION public.shop_has_tracking(public.shop_order, jsonb)",
        ),
        CreateMachine("shop_order", ORDER),
        AttachMachine("order", "status", machine="shop_order"),
    ]
