"""A writer process for test_audit_concurrency: appends COUNT events to one organisation's chain.

    python audit_writer_process.py ORG_ID COUNT READY_FILE GO_FILE

It sets Django up against ``DATABASE_URL`` (the test database), touches READY_FILE, waits for GO_FILE
so that all writers start together, then records each event in its own transaction.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    org_id, count, ready_file, go_file = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        Path(sys.argv[3]),
        Path(sys.argv[4]),
    )
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caseloop.settings")
    import django

    django.setup()
    from django.db import transaction

    from caseloop.accounts.models import Organization
    from caseloop.accounts.permissions import Actor
    from caseloop.audit.services import audit_record

    actor = Actor.for_system(Organization.objects.get(pk=org_id))
    ready_file.touch()
    deadline = time.monotonic() + 120
    while not go_file.exists():
        if time.monotonic() > deadline:
            sys.exit("no start signal within 120 s")
        time.sleep(0.005)
    for i in range(count):
        with transaction.atomic():
            audit_record(
                actor=actor, verb="test.concurrent", subject=("writer", os.getpid()), payload={"i": i}
            )


if __name__ == "__main__":
    main()
