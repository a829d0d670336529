#!/usr/bin/env bash
# Set up and run the Caseloop demo on the embedded default (SQLite, tasks in-process):
# venv, install, migrate, quickstart (prints the demo logins), dev server on 127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py quickstart
echo "Open http://127.0.0.1:8000 and sign in with one of the logins above."
exec .venv/bin/python manage.py runserver 127.0.0.1:8000
