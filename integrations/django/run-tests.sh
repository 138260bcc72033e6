#!/usr/bin/env bash
# The Django integration's tests (Django's test runner) against a throwaway
# PostgreSQL with fsm installed (scripts/test-pg.sh installs it first), in
# the virtualenv integrations/django/venv.sh makes.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg-env.sh
venv=$(bash integrations/django/venv.sh)
source scripts/throwaway-pg.sh
cd integrations/django/tests
"$venv/bin/python" -m django test --settings=settings --noinput -v 2 shop legacy
