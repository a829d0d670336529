#!/usr/bin/env bash
# Set up and run the whole test suite against the real PostgreSQL and Redis of this machine.
# With CI set, both services are required; without it, tests that need a missing one are skipped
# and the summary says so loudly. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev || { echo "setup failed" >&2; exit 1; }

PG_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/caseloop}
REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}

if .venv/bin/python - "$PG_URL" <<'PY' 2>/dev/null
import sys, psycopg, dj_database_url
c = dj_database_url.parse(sys.argv[1])
psycopg.connect(host=c["HOST"], port=c["PORT"] or 5432, user=c["USER"], dbname="postgres", connect_timeout=3).close()
PY
then
  export DATABASE_URL=$PG_URL
elif [ -n "${CI:-}" ]; then
  echo "CI: PostgreSQL is unreachable at $PG_URL — start it (see README) and re-run." >&2
  exit 1
else
  echo "!!! PostgreSQL unreachable at $PG_URL: running on SQLite, PostgreSQL tests will be skipped." >&2
fi

if .venv/bin/python -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_timeout=3).ping()" "$REDIS_URL" 2>/dev/null; then
  export CELERY_BROKER_URL=$REDIS_URL
elif [ -n "${CI:-}" ]; then
  echo "CI: Redis is unreachable at $REDIS_URL — start it (see README) and re-run." >&2
  exit 1
else
  echo "!!! Redis unreachable at $REDIS_URL: Redis and worker tests will be skipped." >&2
fi

export SECRET_KEY=${SECRET_KEY:-caseloop-test-secret-key-not-for-production}
# Tasks run in-process unless a test starts a real worker and switches this off for itself.
export CELERY_TASK_ALWAYS_EAGER=1

.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: that is a failure of the suite, not a pass." >&2
fi
exit $rc
