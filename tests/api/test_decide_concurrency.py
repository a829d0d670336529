"""A worker deciding a queued case while the API creates another case of the same workflow must not
deadlock (seen under load in bench/api.py: 500s from the API, failed decide_case tasks)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from caseloop.accounts.models import Role
from tests.factories import live_case_fields, make_actor, make_claims_workflow, make_organization
from workflows.models import Case, CaseStatus, Decision
from workflows.services import case_create, case_decide

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_creating_a_case_while_a_worker_decides_another_does_not_deadlock():
    admin = make_actor(make_organization(), Role.ADMIN)
    workflow, _ = make_claims_workflow(admin)
    fields = live_case_fields(workflow, count=2)
    queued = case_create(actor=admin, workflow=workflow, fields=fields[0], decide=False)
    Case.objects.filter(pk=queued.pk).update(status=CaseStatus.QUEUED)
    errors: list[BaseException] = []
    head_locked = threading.Event()

    def api_request() -> None:
        # Like POST /api/v1/cases: create (the audit chain's head row is locked from here) and commit
        # a moment later; the case's foreign keys are checked at commit.
        try:
            with transaction.atomic():
                case_create(actor=admin, workflow=workflow, fields=fields[1], decide=False)
                head_locked.set()
                time.sleep(1.0)
        except BaseException as exc:
            errors.append(exc)
        finally:
            head_locked.set()
            connection.close()

    def worker() -> None:
        try:
            head_locked.wait(timeout=10)
            case_decide(case_id=queued.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=api_request), threading.Thread(target=worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert Decision.objects.filter(case=queued).exists()
    assert Case.objects.filter(workflow=workflow).count() == 2
