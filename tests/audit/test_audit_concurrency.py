"""Several OS processes append to one organisation's chain at once: no gaps, no forks, one sound chain."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
from django.db import connection

from caseloop.audit.chain import GENESIS_HASH
from caseloop.audit.models import AuditChainHead, AuditEvent
from caseloop.audit.selectors import audit_verify
from tests.factories import make_organization

WRITER = Path(__file__).with_name("audit_writer_process.py")
WRITERS = 4
EVENTS_EACH = 30

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _test_database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_concurrent_writers_in_one_organisation_make_one_gapless_chain(tmp_path):
    organization = make_organization()  # committed: the writers see it, and its creation event is #1
    env = dict(os.environ, DATABASE_URL=_test_database_url())
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                str(organization.pk),
                str(EVENTS_EACH),
                str(tmp_path / f"ready-{n}"),
                str(go),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in range(WRITERS)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{n}").exists() for n in range(WRITERS)):
            failed = [w for w in writers if w.poll() is not None]
            assert not failed, f"a writer exited before starting:\n{failed[0].communicate()[0]}"
            assert time.monotonic() < deadline, "writers did not start within 120 s"
            time.sleep(0.05)
        go.touch()
        for writer in writers:
            output, _ = writer.communicate(timeout=300)
            assert writer.returncode == 0, f"a writer failed:\n{output}"
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()

    total = 1 + WRITERS * EVENTS_EACH
    events = list(
        AuditEvent.objects.filter(organization=organization)
        .order_by("sequence")
        .values_list("sequence", "prev_hash", "hash", "subject_id")
    )
    assert [sequence for sequence, *_ in events] == list(range(1, total + 1))  # unique, no gaps
    assert events[0][1] == GENESIS_HASH
    for (_, _, before_hash, _), (_, prev_hash, _, _) in pairwise(events):
        assert prev_hash == before_hash  # one line of links…
    assert len({prev_hash for _, prev_hash, _, _ in events}) == total  # …and no event has a sibling: no fork
    head = AuditChainHead.objects.get(organization=organization)
    assert (head.sequence, head.hash) == (total, events[-1][2])
    result = audit_verify(organization=organization)
    assert result.ok and result.checked == total, result.first_break

    # The writers really did overlap: in a serial run each would hand over exactly once.
    writer_order = [subject_id for *_, subject_id in events[1:]]
    handovers = sum(1 for a, b in pairwise(writer_order) if a != b)
    assert handovers > WRITERS - 1
