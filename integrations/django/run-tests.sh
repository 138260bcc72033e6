#!/usr/bin/env bash
# The Django integration's tests (Django's test runner) against a throwaway
# PostgreSQL with fsm installed (scripts/test-pg.sh installs it first). The
# virtualenv is kept in ~/.cache/fsm-venv (FSM_VENV), Django and psycopg
# come from PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
venv=${FSM_VENV:-$HOME/.cache/fsm-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "Django>=5.2,<6" "psycopg[binary]>=3.1" "django-fsm-2>=4.2,<5" "django-fsm-log>=5,<6" -e integrations/django
source scripts/throwaway-pg.sh
cd integrations/django/tests
"$venv/bin/python" -m django test --settings=settings --noinput -v 2 shop legacy
