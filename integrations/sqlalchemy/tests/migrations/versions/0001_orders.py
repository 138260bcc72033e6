"""orders, with the order machine attached to its status column

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

ORDER = {
    "states": {"new": {"initial": True}, "paid": {}, "cancelled": {"final": True}},
    "events": {"pay": {"from": "new", "to": "paid"}, "cancel": {"from": ["new", "paid"], "to": "cancelled"}},
}


def upgrade():
    op.execute("CREATE EXTENSION IF NOT EXISTS fsm")
    op.execute('CREATE SCHEMA "Shop floor"')
    op.create_table(
        "Order's",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("status", sa.Text),
        schema="Shop floor",
    )
    op.create_machine("order", ORDER)
    op.attach_machine("Order's", "status", "order", protect=True, notify="orders", schema="Shop floor")


def downgrade():
    op.detach_machine("Order's", "status", schema="Shop floor")
    op.drop_machine("order", ORDER)
    op.drop_table("Order's", schema="Shop floor")
    op.execute('DROP SCHEMA "Shop floor"')
