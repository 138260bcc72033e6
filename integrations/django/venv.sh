#!/usr/bin/env bash
# Makes (or updates) the virtualenv the Python integrations' tests and the
# Django bench run in, ~/.cache/fsm-venv (FSM_VENV): Django, psycopg,
# django-fsm-2, django-fsm-log, SQLAlchemy and Alembic from PyPI; fsm-client,
# fsm-django and fsm-sqlalchemy from this repository. Prints its path.
set -euo pipefail
cd "$(dirname "$0")"
venv=${FSM_VENV:-$HOME/.cache/fsm-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check "Django>=5.2,<6" "psycopg[binary]>=3.2" \
  "django-fsm-2>=4.2,<5" "django-fsm-log>=5,<6" "SQLAlchemy>=2.0,<3" "alembic>=1.12,<2" \
  -e ../python -e . -e ../sqlalchemy >&2
echo "$venv"
