"""Cases: the list with its filters and search, import, generation, and case, run and decision detail."""

from __future__ import annotations

import json
import statistics
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from caseloop.accounts.models import Role
from caseloop.audit.models import AuditEvent
from tests.factories import (
    claims_fields,
    decide_live_case,
    make_actor,
    make_claims_workflow,
    make_member,
    make_organization,
)
from workflows.models import Case, CaseSource, Decision, Step

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def org():
    admin = make_actor(make_organization("Acme Mutual"))
    workflow, _ = make_claims_workflow(admin, cases=30)
    members = {role: make_member(admin.organization, role) for role in Role.values}
    return admin, workflow, members


def _ids(response) -> list[int]:
    return [row.case.pk for row in response.context["rows"]]


# --------------------------------------------------------------------------- the list


def test_filters_narrow_the_list(client, org):
    admin, workflow, members = org
    decision = decide_live_case(admin, workflow, claims_fields(workflow))
    client.force_login(members[Role.AUDITOR])
    cases = Case.objects.filter(workflow=workflow)

    assert _ids(client.get("/cases/?size=100")) == list(
        cases.order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    test_ids = set(cases.filter(split="test").values_list("pk", flat=True))
    assert set(_ids(client.get(f"/cases/?workflow={workflow.pk}&split=test&size=100"))) == test_ids
    assert _ids(client.get("/cases/?source=api")) == [decision.case_id]
    assert _ids(client.get("/cases/?decided=yes")) == [decision.case_id]
    assert decision.case_id not in _ids(client.get("/cases/?decided=no&size=100"))
    assert _ids(client.get("/cases/?status=decided")) == [decision.case_id]
    # an unknown filter value is dropped, not an error
    assert client.get("/cases/?split=nonsense&decided=maybe&workflow=x").status_code == 200


def test_search_finds_a_case_by_id_reference_or_field_words(client, org):
    _, workflow, members = org
    client.force_login(members[Role.REVIEWER])
    case = Case.objects.filter(workflow=workflow).order_by("id")[3]
    by_id = client.get(f"/cases/?q={case.pk}")
    assert case.pk in _ids(by_id)
    assert by_id.context["exact"] == case
    assert "has this id" in by_id.content.decode()
    assert _ids(client.get(f"/cases/?q={case.external_id.lower()}")) == [case.pk]
    prefix = case.external_id[:-2]
    found = _ids(client.get(f"/cases/?q={prefix}&size=100"))
    assert case.pk in found and len(found) > 1
    surname = case.fields["claimant"].split()[-1]
    expected = {
        c.pk for c in Case.objects.filter(workflow=workflow) if surname in c.fields["claimant"].split()
    }
    assert set(_ids(client.get(f"/cases/?q={surname}&size=100"))) == expected
    policy = case.fields["policy_number"]
    assert case.pk in _ids(client.get(f"/cases/?q={policy}&size=100"))
    assert _ids(client.get(f"/cases/?q={surname[:3].lower()}&size=100"))  # word beginnings match
    assert _ids(client.get("/cases/?q=%25%27%3B--")) == []  # "%';--" is text like any other
    assert b"No case matches these filters." in client.get("/cases/?q=zzzzqqq").content


def test_the_list_shows_only_the_organisations_cases(client, org):
    _, workflow, _ = org
    stranger = make_actor(make_organization("Elsewhere"), role=Role.ADMIN)
    client.force_login(stranger.user)
    response = client.get("/cases/")
    assert response.context["rows"] == []
    assert client.get(f"/cases/?workflow={workflow.pk}").context["rows"] == []
    case = Case.objects.filter(workflow=workflow).first()
    assert client.get(f"/cases/{case.pk}/").status_code == 404
    assert client.get(f"/cases/?q={case.pk}").context["exact"] is None


def test_pages_follow_one_another_without_counting(client, org):
    _, _, members = org
    client.force_login(members[Role.EXPERT])
    first = client.get("/cases/?size=10&split=train")
    second = client.get("/cases/?size=10&split=train&page=2")
    assert len(_ids(first)) == 10 and set(_ids(first)).isdisjoint(_ids(second))
    assert first.context["page"].has_next
    assert "split=train" in first.context["query"] and "page" not in first.context["query"]
    assert 'href="?size=10&amp;split=train&amp;page=2"' in first.content.decode()
    last = client.get("/cases/?size=10&split=train&page=99")
    assert _ids(last) == [] and not last.context["page"].has_next


def test_query_count_does_not_grow_with_page_size(client, org):
    admin, workflow, members = org
    for index in range(3):
        decide_live_case(admin, workflow, claims_fields(workflow, index=index))
    client.force_login(members[Role.EXPERT])
    counts = {}
    for size in (10, 100):
        client.get(f"/cases/?size={size}")
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/cases/?size={size}")
        assert len(response.context["rows"]) == min(size, Case.objects.count())
        counts[size] = len(queries)
    assert counts[10] == counts[100], counts
    assert counts[100] <= 8, counts


# --------------------------------------------------------------------------- import and generation


CSV_WITH_PROBLEMS = (
    "external_id,claim_type,amount_claimed,incident_date,report_date,policy_number,police_report,photos,claimant,"
    "expected_decision,expected.reason_code\n"
    "A-1,theft,1200,2024-03-01,2024-03-02,AUT-1,true,2,Ann Lee,deny,not_covered\n"
    "A-2,meteor,1200,2024-03-01,2024-03-02,AUT-1,true,2,Ann Lee,,\n"
    "A-3,theft,lots,2024-03-01,2024-02-30,AUT-1,true,2,Ann Lee,,\n"
    "A-4,theft,1200,2024-03-01,2024-03-02,AUT-1,true,2,Ann Lee,deny,because\n"
)


def test_import_reports_every_bad_line_and_field_and_imports_nothing(client, org):
    _, workflow, members = org
    client.force_login(members[Role.EXPERT])
    before, events = Case.objects.count(), AuditEvent.objects.count()
    response = client.post(
        "/cases/import/",
        {"workflow": workflow.pk, "format": "csv", "default_split": "train", "text": CSV_WITH_PROBLEMS},
    )
    assert response.status_code == 400
    problems = response.context["problems"]
    assert ("3", "fields.claim_type", problems[0][2]) == problems[0] and "must be one of" in problems[0][2]
    where = {(line, field) for line, field, _ in problems}
    assert {
        ("4", "fields.amount_claimed"),
        ("4", "fields.report_date"),
        ("5", "expected.arguments.reason_code"),
    } <= where
    assert "Nothing was imported: 4 problems" in response.content.decode()
    assert (Case.objects.count(), AuditEvent.objects.count()) == (before, events)


def test_import_of_json_lines_adds_the_cases(client, org):
    _, workflow, members = org
    client.force_login(members[Role.EXPERT])
    fields = claims_fields(workflow)
    lines = "\n".join(
        json.dumps({"fields": fields, "external_id": f"J-{n}", "split": "validation"}) for n in range(3)
    )
    response = client.post(
        "/cases/import/", {"workflow": workflow.pk, "format": "auto", "default_split": "train", "text": lines}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/cases/?workflow={workflow.pk}&source=imported"
    imported = Case.objects.filter(source=CaseSource.IMPORTED)
    assert sorted(imported.values_list("external_id", flat=True)) == ["J-0", "J-1", "J-2"]
    assert set(imported.values_list("split", flat=True)) == {"validation"}


def test_import_of_broken_json_names_the_line(client, org):
    _, workflow, members = org
    client.force_login(members[Role.ADMIN])
    text = '{"fields": {}}\n{"fields": \n'
    response = client.post(
        "/cases/import/", {"workflow": workflow.pk, "format": "jsonl", "default_split": "train", "text": text}
    )
    assert response.status_code == 400
    assert next((line, where) for line, where, _ in response.context["problems"]) == ("2", "")
    assert "not valid JSON" in response.content.decode()


def test_generation_adds_seeded_cases_in_the_chosen_splits(client, org):
    _, workflow, members = org
    client.force_login(members[Role.EXPERT])
    data = {
        "workflow": workflow.pk,
        "count": 20,
        "difficulty": 2,
        "seed": 7,
        "train": 0.5,
        "validation": 0.5,
        "test": 0,
    }
    response = client.post("/cases/generate/", data)
    assert response.status_code == 302
    generated = Case.objects.filter(workflow=workflow, difficulty=2)
    assert generated.count() == 20
    assert {split: generated.filter(split=split).count() for split in ("train", "validation")} == {
        "train": 10,
        "validation": 10,
    }
    response = client.post("/cases/generate/", {**data, "count": 0, "train": 0, "validation": 0})
    assert response.status_code == 400
    assert "count" in response.context["form"].errors and "train" in response.context["form"].errors


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.REVIEWER])
def test_readers_cannot_import_or_generate(client, org, role):
    _, workflow, members = org
    client.force_login(members[role])
    before = Case.objects.count()
    assert client.get("/cases/import/").status_code == 403
    assert (
        client.post(
            "/cases/import/", {"workflow": workflow.pk, "format": "csv", "text": "a\n1\n"}
        ).status_code
        == 403
    )
    assert (
        client.post("/cases/generate/", {"workflow": workflow.pk, "count": 5, "seed": 1}).status_code == 403
    )
    assert Case.objects.count() == before
    page = client.get("/cases/").content
    assert b'href="/cases/import/' not in page and b'href="/cases/generate/' not in page


def test_import_into_another_organisations_workflow_is_refused(client, org):
    _, workflow, _ = org
    stranger = make_actor(make_organization("Elsewhere"), role=Role.EXPERT)
    client.force_login(stranger.user)
    response = client.post(
        "/cases/import/",
        {"workflow": workflow.pk, "format": "csv", "default_split": "train", "text": "a\n1\n"},
    )
    assert response.status_code == 400
    assert "workflow" in response.context["form"].errors


# --------------------------------------------------------------------------- detail pages


def test_case_detail_shows_fields_expected_outcome_runs_and_decisions(client, org):
    admin, workflow, members = org
    decision = decide_live_case(admin, workflow, claims_fields(workflow))
    labelled = Case.objects.filter(workflow=workflow, expected__isnull=False).first()
    client.force_login(members[Role.AUDITOR])
    page = client.get(f"/cases/{labelled.pk}/").content.decode()
    assert labelled.expected["decision"] in page
    assert "The claimant&#x27;s account of the loss." in page  # the field's meaning, from the spec
    page = client.get(f"/cases/{decision.case_id}/").content.decode()
    assert f'href="/runs/{decision.run_id}/"' in page
    assert f'href="/decisions/{decision.pk}/"' in page
    assert "Pending review" in page


def test_run_detail_shows_the_timeline_the_rubric_and_each_steps_audit_hash(client, org):
    admin, workflow, members = org
    decision = decide_live_case(admin, workflow, claims_fields(workflow))
    client.force_login(members[Role.AUDITOR])
    response = client.get(f"/runs/{decision.run_id}/")
    page = response.content.decode()
    steps = list(Step.objects.filter(run_id=decision.run_id).order_by("index"))
    events = AuditEvent.objects.filter(subject_type="workflows.run", subject_id=str(decision.run_id))
    assert len(steps) >= 2 and events.count() == len(steps)
    for step in steps:
        assert f'id="step-{step.index}"' in page
        event = events.get(payload__step=step.index)
        assert f'title="{event.hash}"' in page
    decided = AuditEvent.objects.get(
        subject_type="workflows.decision", subject_id=str(decision.pk), verb="decision.pending_review"
    )
    assert f'title="{decided.hash}"' in page
    for result in decision.run.breakdown:
        assert result["name"] in page
    assert "Rubric breakdown" in page and "Step by step" in page and "Decisions weighed" in page
    assert decision.explanation["text"] in page.replace("&#x27;", "'")


def test_decision_detail_shows_the_explanation_and_is_scoped(client, org):
    admin, workflow, members = org
    decision = decide_live_case(admin, workflow, claims_fields(workflow))
    client.force_login(members[Role.REVIEWER])
    response = client.get(f"/decisions/{decision.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Decision #{decision.pk}" in page
    for alternative in decision.explanation["alternatives"]:
        assert f"{alternative['probability']:.3f}" in page
    stranger = make_actor(make_organization("Elsewhere"), role=Role.ADMIN)
    client.force_login(stranger.user)
    assert client.get(f"/decisions/{decision.pk}/").status_code == 404
    assert client.get(f"/runs/{decision.run_id}/").status_code == 404
    assert Decision.objects.filter(pk=decision.pk).exists()


# --------------------------------------------------------------------------- speed at scale


@pytest.mark.slow
def test_the_list_stays_fast_with_a_hundred_thousand_cases(client, org):
    admin, workflow, members = org
    with connection.cursor() as cursor:
        # 30 generated cases, copied with older timestamps and fresh references until there are 100,000.
        cursor.execute(
            """
            INSERT INTO workflows_case (organization_id, workflow_id, workflow_version_id, external_id,
                fields, expected, split, source, difficulty, status, created_at)
            SELECT organization_id, workflow_id, workflow_version_id, external_id || '-' || g,
                fields, expected, split, source, difficulty, status, created_at - make_interval(secs => g)
            FROM workflows_case, generate_series(1, 3333) AS g WHERE workflow_id = %s
            """,
            [workflow.pk],
        )
        cursor.execute("ANALYZE workflows_case")
    assert Case.objects.filter(organization=admin.organization).count() >= 100_000
    some = Case.objects.filter(workflow=workflow).order_by("id")[5000]
    client.force_login(members[Role.EXPERT])
    urls = [
        "/cases/",
        "/cases/?size=100",
        f"/cases/?workflow={workflow.pk}&split=test",
        "/cases/?source=generated&status=new&decided=no",
        f"/cases/?q={some.fields['claimant'].split()[-1]}",
        f"/cases/?q={some.external_id}",
        f"/cases/?q={some.pk}",
        "/cases/?q=nothing-like-this",
        "/cases/?page=50",
    ]
    best, median = {}, {}
    for url in urls:
        client.get(url)
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            assert client.get(url).status_code == 200
            samples.append((time.perf_counter() - started) * 1000)
        best[url], median[url] = min(samples), statistics.median(samples)
    print(
        "case list at 100,000 cases, ms (best, median):",
        {url: (round(best[url]), round(median[url])) for url in urls},
    )
    # The best of five: the test machine is shared, and a busy neighbour is not the list's cost.
    assert max(best.values()) < 300, best
