#!/usr/bin/env bash
# The SQLAlchemy/Alembic integration's tests (unittest) against a throwaway
# PostgreSQL with fsm installed (scripts/test-pg.sh installs it first), in
# the virtualenv integrations/django/venv.sh makes for every Python
# integration. Each test class works in a database of its own.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
venv=$(bash integrations/django/venv.sh)
source scripts/throwaway-pg.sh
cd integrations/sqlalchemy/tests
"$venv/bin/python" -m unittest -v test_orm test_alembic
