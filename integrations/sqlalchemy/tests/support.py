"""A database of its own per test class, on the throwaway cluster the
run script started (libpq's PG* environment variables say where)."""

from __future__ import annotations

import os
import unittest

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine


def url(database: str) -> URL:
    # psycopg reads PGHOST (a socket directory) and PGPORT itself when the
    # URL leaves them out.
    return URL.create("postgresql+psycopg", username=os.environ.get("PGUSER"), database=database)


class DatabaseTestCase(unittest.TestCase):
    """Creates database `<class name>` with fsm in it, and `engine` on it;
    drops it after the class's tests."""

    engine: Engine

    @classmethod
    def setUpClass(cls) -> None:
        cls.database = cls.__name__.lower()
        admin = create_engine(url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{cls.database}"'))
            c.execute(text(f'CREATE DATABASE "{cls.database}"'))
        admin.dispose()
        cls.engine = create_engine(url(cls.database))
        with cls.engine.begin() as c:
            c.execute(text("CREATE EXTENSION fsm"))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.engine.dispose()
        admin = create_engine(url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE "{cls.database}"'))
        admin.dispose()
