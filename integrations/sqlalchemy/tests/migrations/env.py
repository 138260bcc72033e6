"""The Alembic environment of the tests' migrations: the URL comes from
the config (set by the test), online or offline (--sql)."""

from alembic import context
from sqlalchemy import create_engine

import fsm_sqlalchemy.alembic  # noqa: F401  (registers op.create_machine, op.attach_machine, ...)

url = context.config.get_main_option("sqlalchemy.url")
if context.is_offline_mode():
    context.configure(url=url, literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
