"""The workflow and rubric editors, versions and reference tables, through the Django test client."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from caseloop.accounts.models import Role
from caseloop.audit.models import AuditEvent
from tests.factories import make_actor, make_claims_workflow, make_member, make_organization
from workflows.models import ReferenceTable, Rubric, RubricVersion, Workflow, WorkflowVersion
from workflows.packs import get_pack

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

APPROVE_ANYTHING = {
    "step_cost": 0,
    "criteria": [
        {
            "name": "approved",
            "kind": "expression",
            "weight": 1,
            "params": {"expression": "decision == 'approve'"},
        }
    ],
}


@pytest.fixture
def org():
    admin = make_actor(make_organization("Acme Mutual"))
    workflow, _ = make_claims_workflow(admin, cases=40)
    members = {role: make_member(admin.organization, role) for role in Role.values}
    return workflow, members


def _login(client, user):
    client.force_login(user)
    return client


def _draft(response) -> dict:
    return json.loads(response.context["draft_json"])


def _spec_op(client, workflow, draft, op, base=1, **data):
    payload = {"draft": json.dumps(draft), "base": str(base), "op": op, **data}
    return client.post(f"/workflows/{workflow.pk}/edit/", payload)


# --------------------------------------------------------------------------- roles and organisations


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.REVIEWER])
def test_auditors_and_reviewers_read_workflows_but_cannot_edit(client, org, role):
    workflow, members = org
    rubric = workflow.rubrics.get()
    _login(client, members[role])
    for url in [
        "/workflows/",
        f"/workflows/{workflow.pk}/",
        f"/workflows/{workflow.pk}/versions/",
        f"/workflows/{workflow.pk}/versions/1/",
        f"/workflows/{workflow.pk}/tables/",
        f"/workflows/{workflow.pk}/tables/policies/",
        f"/workflows/{workflow.pk}/rubrics/{rubric.pk}/",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"Edit spec" not in response.content
    for url in [
        "/workflows/new/",
        f"/workflows/{workflow.pk}/edit/",
        f"/workflows/{workflow.pk}/rubrics/new/",
        f"/workflows/{workflow.pk}/rubrics/{rubric.pk}/edit/",
    ]:
        assert client.get(url).status_code == 403, url
    versions, events = WorkflowVersion.objects.count(), AuditEvent.objects.count()
    spec = workflow.latest_version.spec
    assert _spec_op(client, workflow, spec, "save", note="sneaky").status_code == 403
    response = client.post(f"/workflows/{workflow.pk}/tables/", {"name": "policies", "text": "a,b\n1,2\n"})
    assert response.status_code == 403
    assert ReferenceTable.objects.get(workflow=workflow, name="policies").columns != ["a", "b"]
    assert (WorkflowVersion.objects.count(), AuditEvent.objects.count()) == (versions, events)


def test_another_organisations_workflow_is_not_found(client, org):
    workflow, _ = org
    stranger = make_actor(make_organization("Elsewhere"), role=Role.ADMIN)
    rubric = workflow.rubrics.get()
    _login(client, stranger.user)
    for url in [
        f"/workflows/{workflow.pk}/",
        f"/workflows/{workflow.pk}/edit/",
        f"/workflows/{workflow.pk}/versions/",
        f"/workflows/{workflow.pk}/tables/",
        f"/workflows/{workflow.pk}/rubrics/{rubric.pk}/",
        f"/workflows/{workflow.pk}/rubrics/{rubric.pk}/edit/",
    ]:
        assert client.get(url).status_code == 404, url
    response = client.post(
        f"/workflows/{workflow.pk}/rubrics/try/", {"definition": json.dumps(APPROVE_ANYTHING)}
    )
    assert response.status_code == 404
    assert b"Auto claims" not in client.get("/workflows/").content


def test_signed_out_visitors_are_sent_to_sign_in(client, org):
    workflow, _ = org
    response = client.get(f"/workflows/{workflow.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# --------------------------------------------------------------------------- creating a workflow


def test_expert_creates_a_workflow_from_the_starter_spec(client, org):
    _, members = org
    _login(client, members[Role.EXPERT])
    response = client.post("/workflows/new/", {"name": "Loan requests", "description": "Small loans"})
    workflow = Workflow.objects.get(name="Loan requests")
    assert response.status_code == 302
    assert response["Location"] == f"/workflows/{workflow.pk}/"
    spec = workflow.latest_version.spec
    assert spec["name"] == "loan_requests"
    assert [d["name"] for d in spec["decisions"]] == ["approve", "deny"]
    assert AuditEvent.objects.filter(verb="workflow.created", subject_id=str(workflow.pk)).exists()


def test_a_bad_starting_spec_is_refused_with_each_problem_by_path(client, org):
    _, members = org
    _login(client, members[Role.EXPERT])
    spec = {
        "name": "x",
        "case_fields": [{"name": "amount", "type": "money"}],
        "decisions": [{"name": "steps", "arguments": []}],
    }
    response = client.post("/workflows/new/", {"name": "Broken", "spec": json.dumps(spec)})
    assert response.status_code == 200
    text = response.content.decode()
    assert "case_fields[0].type: must be one of" in text
    assert "decisions[0].name: &#x27;steps&#x27; is a reserved name" in text
    response = client.post(
        "/workflows/new/", {"name": "Broken", "spec": '{"name": "x",\n  "case_fields": [}'}
    )
    assert "Not valid JSON" in response.content.decode()
    assert "line 2" in response.content.decode()
    assert not Workflow.objects.filter(name="Broken").exists()


# --------------------------------------------------------------------------- the spec editor


def test_an_expert_adds_a_case_field_and_saves_a_version_with_a_readable_diff(client, org):
    workflow, members = org
    _login(client, members[Role.EXPERT])
    draft = _draft(client.get(f"/workflows/{workflow.pk}/edit/"))
    response = _spec_op(
        client,
        workflow,
        draft,
        "add:case_fields",
        **{"case_fields-name": "vin", "case_fields-type": "string", "case_fields-max_length": "17"},
    )
    assert response.status_code == 200
    assert "Field &#x27;vin&#x27; added" in response.content.decode()
    assert "The draft is valid" in response.content.decode()
    draft = _draft(response)
    assert draft["case_fields"][-1] == {
        "name": "vin",
        "type": "string",
        "required": False,
        "max_length": 17,
        "description": "",
    }
    assert WorkflowVersion.objects.filter(workflow=workflow).count() == 1  # nothing saved yet

    response = _spec_op(client, workflow, draft, "save", note="Add the VIN")
    assert response.status_code == 302
    version = workflow.latest_version
    assert version.number == 2 and version.note == "Add the VIN"
    assert response["Location"] == f"/workflows/{workflow.pk}/versions/2/"
    page = client.get(response["Location"]).content.decode()
    assert "Changes from version 1" in page
    assert "added" in page and ">vin<" in page and "max_length=17" in page
    assert AuditEvent.objects.filter(verb="workflow_version.created", subject_id=str(version.pk)).exists()


def test_a_problem_is_shown_beside_its_item_by_path_and_nothing_is_saved(client, org):
    workflow, members = org
    _login(client, members[Role.EXPERT])
    draft = workflow.latest_version.spec
    position = len(draft["case_fields"])
    response = _spec_op(
        client,
        workflow,
        draft,
        "add:case_fields",
        **{"case_fields-name": "expected", "case_fields-type": "number", "case_fields-choices": "a, b"},
    )
    text = response.content.decode()
    assert "The draft has 2 problems" in text
    assert f"case_fields[{position}].name</span>: &#x27;expected&#x27; is a reserved name" in text
    assert f"case_fields[{position}].choices</span>: only enum fields have choices" in text
    # The form stays open on the item, with the problem on its input.
    assert response.context["sections"][0].editing == position
    assert "is a reserved name" in str(response.context["sections"][0].form["name"].errors)
    versions = WorkflowVersion.objects.count()
    response = _spec_op(client, workflow, _draft(response), "save", note="Try anyway")
    assert response.status_code == 200
    assert "Not saved" in response.content.decode()
    assert WorkflowVersion.objects.count() == versions


def test_a_decision_with_arguments_is_added_through_its_form(client, org):
    workflow, members = org
    _login(client, members[Role.EXPERT])
    draft = workflow.latest_version.spec
    response = _spec_op(
        client,
        workflow,
        draft,
        "add:decisions",
        **{
            "decisions-name": "request_documents",
            "decisions-description": "Ask the claimant for more.",
            "decisions-args-TOTAL_FORMS": "2",
            "decisions-args-INITIAL_FORMS": "0",
            "decisions-args-0-name": "document",
            "decisions-args-0-type": "enum",
            "decisions-args-0-required": "on",
            "decisions-args-0-choices": "police_report\nphotos",
            "decisions-args-1-name": "",
            "decisions-args-1-type": "string",
        },
    )
    added = _draft(response)["decisions"][-1]
    assert added["name"] == "request_documents"
    assert added["arguments"] == [
        {
            "name": "document",
            "type": "enum",
            "required": True,
            "choices": ["police_report", "photos"],
            "description": "",
        }
    ]
    assert "The draft is valid" in response.content.decode()


def test_editing_removing_and_moving_items(client, org):
    workflow, members = org
    _login(client, members[Role.EXPERT])
    draft = workflow.latest_version.spec
    response = _spec_op(client, workflow, draft, "edit:tools:0")
    form = response.context["sections"][1].form
    assert form.initial["name"] == "lookup_policy" and form.initial["kind"] == "lookup"
    draft = _draft(_spec_op(client, workflow, draft, "down:case_fields:0"))
    assert [f["name"] for f in draft["case_fields"][:2]] == ["amount_claimed", "claim_type"]
    response = _spec_op(client, workflow, draft, "remove:tools:0")
    text = response.content.decode()
    # Every tool that required lookup_policy now points at a tool that does not exist.
    assert "tools[0].requires[0]</span>: unknown tool &#x27;lookup_policy&#x27;" in text


def test_a_section_replaced_as_json_reports_syntax_errors_with_their_line(client, org):
    workflow, members = org
    _login(client, members[Role.EXPERT])
    draft = workflow.latest_version.spec
    response = _spec_op(client, workflow, draft, "json:tools", **{"json-tools": '[\n  {"name": "x",\n  }\n]'})
    text = response.content.decode()
    assert "Not valid JSON" in text and "line 3" in text
    assert _draft(response) == draft
    tools = [{"name": "risk", "kind": "expression", "expression": "amount_claimed / 1000", "requires": []}]
    response = _spec_op(client, workflow, draft, "json:tools", **{"json-tools": json.dumps(tools)})
    assert [t["name"] for t in _draft(response)["tools"]] == ["risk"]


def test_saving_over_a_newer_version_asks_to_look_first(client, org):
    workflow, members = org
    _login(client, members[Role.EXPERT])
    draft = workflow.latest_version.spec
    draft["max_steps"] = 15
    response = _spec_op(client, workflow, draft, "save", base=0, note="Stale")
    assert response.status_code == 200
    assert "Version 1 was saved after you opened this editor" in response.content.decode()
    assert response.context["base"] == 1
    response = _spec_op(client, workflow, draft, "save", base=1, note="Fifteen steps")
    assert response.status_code == 302
    assert workflow.latest_version.spec["max_steps"] == 15


def test_htmx_gets_the_editor_alone(client, org):
    workflow, members = org
    _login(client, members[Role.EXPERT])
    response = client.post(
        f"/workflows/{workflow.pk}/edit/",
        {"draft": json.dumps(workflow.latest_version.spec), "base": "1", "op": "check"},
        headers={"HX-Request": "true"},
    )
    text = response.content.decode()
    assert text.lstrip().startswith('<form id="editor"')
    assert "<html" not in text


# --------------------------------------------------------------------------- reference tables


def test_table_upload_reports_each_bad_line_and_writes_nothing(client, org):
    workflow, members = org
    _login(client, members[Role.EXPERT])
    events = AuditEvent.objects.count()
    csv = "code,limit\nA,100\nB,200,extra\nC\nD,400\n"
    response = client.post(f"/workflows/{workflow.pk}/tables/", {"name": "limits", "text": csv})
    assert response.status_code == 400
    report = response.content.decode()
    assert "The table was not saved: 2 problems" in report
    assert '<td class="num">3</td>' in report and '<td class="num">4</td>' in report
    assert not ReferenceTable.objects.filter(workflow=workflow, name="limits").exists()
    assert AuditEvent.objects.count() == events

    response = client.post(
        f"/workflows/{workflow.pk}/tables/", {"name": "limits", "text": "code,limit\nA,100\n"}
    )
    assert response.status_code == 302
    table = ReferenceTable.objects.get(workflow=workflow, name="limits")
    assert table.rows == [{"code": "A", "limit": "100"}]


def test_tables_page_names_tables_that_lookup_tools_miss(client, org):
    workflow, members = org
    ReferenceTable.objects.filter(workflow=workflow, name="policies").delete()
    _login(client, members[Role.AUDITOR])
    response = client.get(f"/workflows/{workflow.pk}/tables/")
    assert "Lookup tools read tables that do not exist yet" in response.content.decode()
    assert "Upload a table" not in response.content.decode()


# --------------------------------------------------------------------------- rubrics


def _rubric_op(client, workflow, rubric, draft, op, base=1, headers=None, **data):
    payload = {"draft": json.dumps(draft), "base": str(base), "op": op, **data}
    return client.post(f"/workflows/{workflow.pk}/rubrics/{rubric.pk}/edit/", payload, headers=headers or {})


def test_rubric_editor_adds_a_kind_specific_criterion(client, org):
    workflow, members = org
    rubric = workflow.rubrics.get()
    _login(client, members[Role.EXPERT])
    draft = _draft(client.get(f"/workflows/{workflow.pk}/rubrics/{rubric.pk}/edit/"))
    response = _rubric_op(
        client,
        workflow,
        rubric,
        draft,
        "add:criteria",
        headers={"HX-Request": "true"},
        **{
            "criteria-name": "mentions_deductible",
            "criteria-kind": "explanation_mentions",
            "criteria-weight": "0.5",
            "criteria-explanation_mentions__terms": "deductible, coverage limit",
            "criteria-explanation_mentions__min_matches": "1",
            # inputs of other kinds are ignored, even when they hold nonsense
            "criteria-numeric_tolerance__absolute": "-3",
        },
    )
    assert response.status_code == 200
    assert response["HX-Trigger-After-Swap"] == "rubricDraftChanged"
    added = _draft(response)["criteria"][-1]
    assert added["kind"] == "explanation_mentions"
    assert added["params"] == {"terms": ["deductible", "coverage limit"], "min_matches": 1}
    assert added["weight"] == 0.5


def test_rubric_problems_are_shown_by_path_and_the_panel_is_not_refreshed(client, org):
    workflow, members = org
    rubric = workflow.rubrics.get()
    _login(client, members[Role.EXPERT])
    draft = rubric.latest_version.definition
    n = len(draft["criteria"])
    response = _rubric_op(
        client,
        workflow,
        rubric,
        draft,
        "add:criteria",
        headers={"HX-Request": "true"},
        **{
            "criteria-name": "reason_close",
            "criteria-kind": "numeric_tolerance",
            "criteria-weight": "1",
            "criteria-numeric_tolerance__argument": "reason_code",
            "criteria-numeric_tolerance__relative": "0.1",
            "criteria-when": "decision ==",
        },
    )
    text = response.content.decode()
    assert f"criteria[{n}].params.argument</span>: argument &#x27;reason_code&#x27; is not numeric" in text
    assert f"criteria[{n}].when</span>: does not compile" in text
    form = response.context["form"]
    assert "is not numeric" in str(form["numeric_tolerance__argument"].errors)
    assert "does not compile" in str(form["when"].errors)
    assert "HX-Trigger-After-Swap" not in response


def test_a_numeric_tolerance_needs_a_tolerance(client, org):
    workflow, members = org
    rubric = workflow.rubrics.get()
    _login(client, members[Role.EXPERT])
    draft = rubric.latest_version.definition
    response = _rubric_op(
        client,
        workflow,
        rubric,
        draft,
        "add:criteria",
        **{
            "criteria-name": "paid",
            "criteria-kind": "numeric_tolerance",
            "criteria-weight": "1",
            "criteria-numeric_tolerance__argument": "amount",
        },
    )
    assert "Give an absolute or a relative tolerance" in response.content.decode()
    assert _draft(response) == draft


def test_try_it_warns_when_an_exploit_scores_high(client, org):
    workflow, members = org
    _login(client, members[Role.AUDITOR])  # trying a rubric reads, it does not write
    response = client.post(
        f"/workflows/{workflow.pk}/rubrics/try/", {"definition": json.dumps(APPROVE_ANYTHING)}
    )
    text = response.content.decode()
    assert "Warning: reward hacking pays under this rubric" in text
    assert "<strong>Always approve</strong> scores <strong>1.00</strong>" in text
    response = client.post(
        f"/workflows/{workflow.pk}/rubrics/try/",
        {"definition": json.dumps(get_pack("claims").default_rubric_dict)},
    )
    assert "No exploit policy reaches 0.50" in response.content.decode()
    bad = {
        "criteria": [{"name": "x", "kind": "step_order", "params": {"before": "nope", "after": "decision"}}]
    }
    response = client.post(f"/workflows/{workflow.pk}/rubrics/try/", {"definition": json.dumps(bad)})
    assert (
        "criteria[0].params.before</span>: unknown tool or decision &#x27;nope&#x27;"
        in response.content.decode()
    )


def test_saving_a_rubric_version_and_reading_its_history(client, org):
    workflow, members = org
    rubric = workflow.rubrics.get()
    _login(client, members[Role.EXPERT])
    draft = rubric.latest_version.definition
    response = _rubric_op(client, workflow, rubric, draft, "save", note="no change")
    assert "Nothing to save" in response.content.decode()
    draft["criteria"][0]["weight"] = 5
    draft["criteria"] = [c for c in draft["criteria"] if c["name"] != "checked_coverage"]
    response = _rubric_op(client, workflow, rubric, draft, "save", note="Outcome counts more")
    assert response.status_code == 302
    assert response["Location"] == f"/workflows/{workflow.pk}/rubrics/{rubric.pk}/?version=2"
    assert RubricVersion.objects.filter(rubric=rubric).count() == 2
    page = client.get(response["Location"]).content.decode()
    assert "2 changes from v1" in page
    page = client.get(f"/workflows/{workflow.pk}/rubrics/{rubric.pk}/?a=1&b=2").content.decode()
    assert "From v1 to v2" in page
    assert ">checked_coverage<" in page and ">right_outcome<" in page


def test_a_new_rubric_starts_from_the_pack_or_a_copy(client, org):
    workflow, members = org
    _login(client, members[Role.EXPERT])
    original = workflow.rubrics.get()
    response = client.post(
        f"/workflows/{workflow.pk}/rubrics/new/", {"name": "Copy", "start": f"copy:{original.pk}"}
    )
    copy = Rubric.objects.get(workflow=workflow, name="Copy")
    assert response["Location"] == f"/workflows/{workflow.pk}/rubrics/{copy.pk}/edit/"
    assert copy.latest_version.definition == original.latest_version.definition
    response = client.post(f"/workflows/{workflow.pk}/rubrics/new/", {"name": "Copy", "start": "blank"})
    assert "already has a rubric named" in response.content.decode()


def test_workflow_pages_answer_in_a_fixed_number_of_queries(client, org):
    workflow, members = org
    _login(client, members[Role.AUDITOR])
    counts = {}
    for url in ["/workflows/", f"/workflows/{workflow.pk}/", f"/workflows/{workflow.pk}/versions/"]:
        client.get(url)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts[url] = len(queries)
    assert max(counts.values()) <= 15, counts


def test_long_histories_paginate(client, org):
    from caseloop.accounts.permissions import Actor
    from workflows.services.rubrics import rubric_version_create

    workflow, members = org
    rubric = workflow.rubrics.get()
    expert = Actor(organization=workflow.organization, user=members[Role.EXPERT], role=Role.EXPERT)
    definition = rubric.latest_version.definition
    for weight in range(2, 24):
        definition["criteria"][0]["weight"] = weight
        rubric_version_create(actor=expert, rubric=rubric, definition=definition, note=f"weight {weight}")
    _login(client, members[Role.AUDITOR])
    first = client.get(f"/workflows/{workflow.pk}/rubrics/{rubric.pk}/")
    assert [row["version"].number for row in first.context["history"]] == list(range(23, 3, -1))
    assert first.context["history"][0]["changes"][0].details[0].new == 23
    assert 'href="?page=2"' in first.content.decode()
    second = client.get(f"/workflows/{workflow.pk}/rubrics/{rubric.pk}/?version=5&page=2")
    assert [row["version"].number for row in second.context["history"]] == [3, 2, 1]
    assert second.context["shown"].number == 5
    assert 'href="?version=5&amp;page=1"' in second.content.decode()
