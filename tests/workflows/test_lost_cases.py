"""Live cases whose decide task was lost are queued again by beat, and decided exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import live_case_fields, make_actor, make_claims_workflow
from workflows.models import Case, CaseStatus, Decision
from workflows.services import case_create
from workflows.services.runs import cases_requeue_lost

pytestmark = pytest.mark.django_db


def _queued_case(actor, workflow, fields, *, age: timedelta) -> Case:
    # decide=False: no task is published, as when the broker went down between commit and publish.
    case = case_create(actor=actor, workflow=workflow, fields=fields, decide=False)
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.QUEUED, created_at=timezone.now() - age)
    return case


def test_a_case_whose_task_was_lost_is_decided_once_and_a_recent_one_is_left_alone():
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor)
    lost_fields, recent_fields = live_case_fields(workflow, count=2)
    lost = _queued_case(actor, workflow, lost_fields, age=timedelta(minutes=5))
    recent = _queued_case(actor, workflow, recent_fields, age=timedelta(seconds=10))

    assert cases_requeue_lost() == [lost.pk]  # tasks run eagerly here: the case is decided now
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.status == CaseStatus.DECIDED
    assert recent.status == CaseStatus.QUEUED
    assert Decision.objects.filter(case=lost, run__policy_version__stage="supervised").count() == 1

    # A second sweep finds nothing to do; the case is not decided twice.
    assert cases_requeue_lost() == []
    assert Decision.objects.filter(case=lost).count() == 1


def test_cases_of_a_workflow_without_a_production_version_stay_queued():
    actor = make_actor()
    workflow, _ = make_claims_workflow(actor, production_stage=None)
    (fields,) = live_case_fields(workflow)
    case = _queued_case(actor, workflow, fields, age=timedelta(minutes=5))
    assert cases_requeue_lost() == []
    case.refresh_from_db()
    assert case.status == CaseStatus.QUEUED
