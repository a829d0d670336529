"""The operations screens through Django's test client: dashboard, review queue, training, audit and
organisation admin. Each page checks role and organisation on the server, and list pages make the
same number of queries whatever their page size."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from caseloop.accounts.models import ApiKey, Membership, Role
from caseloop.accounts.permissions import Actor
from caseloop.audit.export import verify_export
from caseloop.audit.models import AuditEvent
from tests.factories import claims_fields, decide_live_case, make_actor, make_claims_workflow, make_member
from workflows.models import Case, Decision, DecisionStatus, Review, Run

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


# --------------------------------------------------------------------------- set-up


@pytest.fixture
def org():
    """An organisation with the claims workflow (expert rules supervised: every decision is
    reviewed), and one member per role."""
    admin = make_actor(role=Role.ADMIN)
    workflow, rules = make_claims_workflow(admin, cases=40)
    organization = admin.organization

    def member(role: str) -> Actor:
        return Actor(organization=organization, user=make_member(organization, role), role=role)

    class Org:
        pass

    o = Org()
    o.admin, o.workflow, o.rules = admin, workflow, rules
    o.reviewer, o.auditor, o.expert = member(Role.REVIEWER), member(Role.AUDITOR), member(Role.EXPERT)
    o.member = member
    return o


def decide(org, *, index: int = 0, amount: float | None = None) -> Decision:
    decision = decide_live_case(
        org.admin, org.workflow, claims_fields(org.workflow, index=index, amount=amount)
    )
    assert decision is not None and decision.status == DecisionStatus.PENDING_REVIEW
    return decision


def copies_of_pending(decision: Decision, count: int) -> None:
    """``count`` more pending decisions, bulk-made as copies of a real one (case, run, decision), so
    list pages can be measured at 100+ rows without deciding 100 cases."""
    now = timezone.now()
    case, run = decision.case, decision.run
    cases = Case.objects.bulk_create(
        [
            Case(
                organization_id=case.organization_id,
                workflow_id=case.workflow_id,
                workflow_version_id=case.workflow_version_id,
                external_id=f"copy-{i}",
                fields=case.fields,
                split=case.split,
                source=case.source,
                status=case.status,
            )
            for i in range(count)
        ]
    )
    runs = Run.objects.bulk_create(
        [
            Run(
                organization_id=run.organization_id,
                case=c,
                workflow_version_id=run.workflow_version_id,
                rubric_version_id=run.rubric_version_id,
                policy_version_id=run.policy_version_id,
                status=run.status,
            )
            for c in cases
        ]
    )
    Decision.objects.bulk_create(
        [
            Decision(
                organization_id=decision.organization_id,
                case=c,
                run=r,
                policy_version_id=decision.policy_version_id,
                name=decision.name,
                arguments=decision.arguments,
                explanation=decision.explanation,
                confidence=decision.confidence,
                status=DecisionStatus.PENDING_REVIEW,
                outcome=decision.outcome,
                routing=decision.routing,
                risk_level=decision.risk_level,
                approvals_required=decision.approvals_required,
                review_requested_at=now - timedelta(minutes=i),
            )
            for i, (c, r) in enumerate(zip(cases, runs, strict=True))
        ]
    )


def count_queries(client, url: str) -> tuple[int, bytes]:
    client.get(url)  # the first request of a session also stores the current organisation in it
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(queries), response.content


def login(client, actor: Actor):
    client.force_login(actor.user)
    return client


# --------------------------------------------------------------------------- dashboard


def test_dashboard_shows_todays_work_pending_age_and_production(client, org):
    decide(org, index=0)
    decide(org, index=1)
    response = login(client, org.reviewer).get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="live-today">2<' in page
    assert 'data-testid="decisions-pending">2<' in page
    assert "Expert rules v1" in page
    assert "Oldest waiting" in page
    assert "no reviewed decisions yet" in page


def test_dashboard_counts_agreement_and_share_executed_without_review(client, org):
    from workflows.services import review_claim_next, review_submit

    decision = decide(org)
    claimed = review_claim_next(actor=org.reviewer)
    assert claimed.pk == decision.pk
    review_submit(actor=org.reviewer, decision=claimed, verdict="approve")
    page = login(client, org.admin).get("/").content.decode()
    assert "100% of the last 1 reviewed decisions" in page
    # executed after review: nothing executed without review
    assert 'data-testid="share-without-review">0%<' in page
    assert "<svg" in page  # the agreement curve


def test_dashboard_of_another_organisation_is_not_shown(client, org):
    decide(org)
    stranger = make_actor(role=Role.ADMIN)
    page = login(client, stranger).get("/").content.decode()
    assert "Auto claims" not in page
    assert 'data-testid="decisions-pending">0<' in page


# --------------------------------------------------------------------------- review queue


def test_review_queue_lists_items_with_age_service_level_and_four_eyes(client, org):
    decide(org)
    response = login(client, org.reviewer).get("/reviews/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "1 waiting" in page
    assert "0/1</span> approvals" in page
    assert "(24 h)" in page
    assert 'data-key="n"' in page


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.EXPERT])
def test_review_queue_is_for_reviewers_and_admins(client, org, role):
    actor = {Role.AUDITOR: org.auditor, Role.EXPERT: org.expert}[role]
    assert login(client, actor).get("/reviews/").status_code == 403
    assert client.post("/reviews/claim/").status_code == 403


def test_claim_next_then_approve_goes_straight_to_the_next_item(client, org):
    first, second = decide(org, index=0), decide(org, index=1)
    login(client, org.reviewer)
    response = client.post("/reviews/claim/")
    assert response.status_code == 302
    claimed_url = response["Location"]
    claimed = int(claimed_url.rstrip("/").split("/")[-1])
    assert claimed in (first.pk, second.pk)
    item = client.get(claimed_url)
    assert item.status_code == 200 and b'data-key="a"' in item.content
    response = client.post(f"/reviews/{claimed}/verdict/", {"verdict": "approve", "comment": "fine"})
    assert response.status_code == 302
    other = ({first.pk, second.pk} - {claimed}).pop()
    assert response["Location"] == f"/reviews/{other}/"
    assert Decision.objects.get(pk=claimed).status in (DecisionStatus.APPROVED, DecisionStatus.EXECUTED)
    assert Review.objects.get(decision_id=claimed).comment == "fine"
    # the last item: after it the queue is empty and the reviewer lands on the queue page
    response = client.post(f"/reviews/{other}/verdict/", {"verdict": "reject", "reason": "no cover"})
    assert response["Location"] == "/reviews/"
    assert Decision.objects.get(pk=other).status == DecisionStatus.REJECTED


def test_a_correction_takes_the_decisions_typed_arguments(client, org):
    decision = decide(org)
    login(client, org.reviewer).post("/reviews/claim/")
    response = client.post(
        f"/reviews/{decision.pk}/verdict/",
        {"verdict": "correct", "corrected_decision": "escalate", "arg__escalate__reason": "high_value"},
    )
    assert response.status_code == 302
    decision.refresh_from_db()
    assert decision.outcome == {"decision": "escalate", "arguments": {"reason": "high_value"}}
    assert decision.status in (DecisionStatus.CORRECTED, DecisionStatus.EXECUTED)


def test_bad_verdicts_are_refused_with_the_field_named(client, org):
    decision = decide(org)
    login(client, org.reviewer).post("/reviews/claim/")
    response = client.post(f"/reviews/{decision.pk}/verdict/", {"verdict": "reject", "reason": "  "})
    assert response.status_code == 400
    assert b"A rejection needs a reason." in response.content
    response = client.post(
        f"/reviews/{decision.pk}/verdict/",
        {"verdict": "correct", "corrected_decision": "approve", "arg__approve__amount": "-5"},
    )
    assert response.status_code == 400
    assert b"amount" in response.content and b"at least 0" in response.content
    assert Decision.objects.get(pk=decision.pk).status == DecisionStatus.PENDING_REVIEW


def test_an_unclaimed_item_cannot_be_judged_and_another_orgs_is_not_found(client, org):
    decision = decide(org)
    other_reviewer = org.member(Role.REVIEWER)
    login(client, other_reviewer).post("/reviews/claim/")  # other_reviewer holds it now
    login(client, org.reviewer)
    response = client.post(f"/reviews/{decision.pk}/verdict/", {"verdict": "approve"})
    assert response.status_code == 302 and response["Location"] == "/reviews/"
    assert not Review.objects.filter(decision=decision).exists()
    stranger = make_actor(role=Role.REVIEWER)
    assert login(client, stranger).get(f"/reviews/{decision.pk}/").status_code == 404
    assert client.post(f"/reviews/{decision.pk}/verdict/", {"verdict": "approve"}).status_code == 404


def test_review_queue_query_count_does_not_grow_with_page_size(client, org):
    copies_of_pending(decide(org), 120)
    login(client, org.reviewer)
    small, _ = count_queries(client, "/reviews/?per_page=10")
    large, large_page = count_queries(client, "/reviews/?per_page=100")
    assert small == large, (small, large)
    assert large_page.count(b"<tr") == 101  # header + 100 rows
    assert b"121 waiting" in large_page


# --------------------------------------------------------------------------- training

TINY_FORM = {
    "ppo_total_updates": "2",
    "ppo_num_envs": "16",
    "ppo_rollout_steps": "8",
    "ppo_minibatches": "4",
    "ppo_fit_cases": "64",
    "ppo_checkpoint_every": "1",
    "ppo_hidden_size": "32",
    "ppo_rollout_workers": "1",
    "evaluate_limit": "20",
}


def launch_form(org, **changes) -> dict:
    """The launch form as the browser posts it: every field at its default, then ``changes``."""
    from training.forms import TrainingLaunchForm

    form = TrainingLaunchForm(workflows=None)
    data = {}
    for name, field in form.fields.items():
        initial = form.get_initial_for_field(field, name)
        if isinstance(initial, bool):
            if initial:
                data[name] = "on"
        elif initial is not None:
            data[name] = str(initial)
    data["workflow"] = str(org.workflow.pk)
    data.update(TINY_FORM)
    data.update(changes)
    return data


def test_launch_form_shows_defaults_and_refuses_bad_settings_on_their_field(client, org):
    from training.models import TrainingJob

    login(client, org.admin)
    page = client.get("/training/new/").content.decode()
    assert 'name="ppo_total_updates"' in page and 'value="3000"' in page
    response = client.post("/training/new/", launch_form(org, ppo_gamma="1.5"))
    assert response.status_code == 400
    form = response.context["form"]
    assert "ppo_gamma" in form.errors and "(0, 1]" in form.errors["ppo_gamma"][0]
    response = client.post("/training/new/", launch_form(org, ppo_num_envs="10", ppo_minibatches="3"))
    assert "ppo_minibatches" in response.context["form"].errors
    response = client.post("/training/new/", launch_form(org, ppo_learning_rate="fast"))
    assert "ppo_learning_rate" in response.context["form"].errors
    response = client.post("/training/new/", launch_form(org, algorithm="lm", lm_settings="{not json"))
    assert "Not valid JSON" in response.context["form"].errors["lm_settings"][0]
    response = client.post(
        "/training/new/", launch_form(org, algorithm="lm", lm_settings='{"grpo": {"learning_rate": -1}}')
    )
    assert response.status_code == 400
    assert "grpo.learning_rate: " in response.context["form"].errors["lm_settings"][0]
    assert not TrainingJob.objects.exists()


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.EXPERT, Role.AUDITOR])
def test_only_admins_launch_training_but_everyone_sees_jobs(client, org, role):
    actor = {Role.REVIEWER: org.reviewer, Role.EXPERT: org.expert, Role.AUDITOR: org.auditor}[role]
    login(client, actor)
    assert client.get("/training/new/").status_code == 403
    assert client.post("/training/new/", launch_form(org)).status_code == 403
    response = client.get("/training/")
    assert response.status_code == 200 and b"Launch training" not in response.content


@pytest.mark.slow
def test_launch_runs_the_job_and_its_pages_show_curves_evaluation_and_promotion(
    client, org, django_capture_on_commit_callbacks
):
    """Celery is eager in tests: the launch's on-commit task runs the tiny job to the end."""
    from training.models import JobStatus, PolicyVersion, Stage, TrainingJob

    login(client, org.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/training/new/", launch_form(org, policy_name="Claims PPO"))
    assert response.status_code == 302, response.context["form"].errors if response.context else None
    job = TrainingJob.objects.get()
    assert response["Location"] == f"/training/jobs/{job.pk}/"
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.config["ppo"]["total_updates"] == 2 and job.config["evaluate_limit"] == 20

    page = client.get(f"/training/jobs/{job.pk}/").content.decode()
    assert "2/2" in page and "<svg" in page and "polyline" in page
    assert 'hx-trigger="every 2s"' not in page  # finished: no more polling
    fragment = client.get(f"/training/jobs/{job.pk}/?fragment=live").content.decode()
    assert fragment.lstrip().startswith('<div id="job-live"')
    jobs_page = client.get("/training/").content.decode()
    assert f"/training/jobs/{job.pk}/" in jobs_page and "Succeeded" in jobs_page

    version = job.result_version
    report = version.evaluations.get(split="validation")
    evaluation = client.get(f"/training/evaluations/{report.pk}/").content.decode()
    assert "Confusion matrix" in evaluation and 'data-testid="confusion"' in evaluation
    assert "expert_rules" in evaluation and "production: Expert rules v1" in evaluation
    expected = next(iter(report.metrics["confusion"]))
    assert f'<th scope="row">{expected}</th>' in evaluation

    # Two updates do not beat the expert rules: the gate refuses, forcing needs a reason.
    url = f"/training/versions/{version.pk}/promote/"
    preview = client.get(url, {"stage": "supervised"}).content.decode()
    assert "evaluation gate refuses" in preview and "below production" in preview
    response = client.post(url, {"stage": "supervised"})
    assert response.status_code == 400 and b"below production" in response.content
    response = client.post(url, {"stage": "supervised", "force": "on", "reason": ""})
    assert response.status_code == 400 and b"needs a written reason" in response.content
    assert PolicyVersion.objects.get(pk=version.pk).stage == Stage.CANDIDATE
    response = client.post(url, {"stage": "supervised", "force": "on", "reason": "Pilot on small claims"})
    assert response.status_code == 302
    assert PolicyVersion.objects.get(pk=version.pk).stage == Stage.SUPERVISED
    assert PolicyVersion.objects.get(pk=org.rules.pk).stage == Stage.RETIRED
    event = AuditEvent.objects.get(verb="policy_version.promoted", subject_id=str(version.pk))
    assert event.payload["reason"] == "Pilot on small claims" and event.actor_ref == str(org.admin.user.pk)


def test_promotion_is_for_admins_and_other_orgs_versions_are_not_found(client, org):
    login(client, org.reviewer)
    url = f"/training/versions/{org.rules.pk}/promote/"
    assert client.get(url, {"stage": "retired"}).status_code == 403
    assert client.post(url, {"stage": "retired"}).status_code == 403
    stranger = make_actor(role=Role.ADMIN)
    login(client, stranger)
    assert client.get(f"/training/versions/{org.rules.pk}/").status_code == 404
    assert client.post(url, {"stage": "retired"}).status_code == 404


def test_a_running_job_polls_and_the_job_list_query_count_does_not_grow(client, org):
    from training.models import JobStatus, TrainingJob
    from training.services.jobs import training_job_launch

    for _ in range(110):
        training_job_launch(actor=org.admin, workflow=org.workflow, config={}, enqueue=False)
    job = TrainingJob.objects.order_by("-id").first()
    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, update=1500, progress=0.5)
    login(client, org.auditor)
    small, small_page = count_queries(client, "/training/?per_page=10")
    large, large_page = count_queries(client, "/training/?per_page=100")
    assert small == large, (small, large)
    assert large_page.count(b"data-job=") == 100
    assert b'hx-trigger="every 2s"' in small_page  # the running job is on the first page
    detail = client.get(f"/training/jobs/{job.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in detail and "1500/3000" in detail and 'aria-valuenow="50"' in detail
    dashboard = client.get("/").content.decode()
    assert f'href="/training/jobs/{job.pk}/"' in dashboard and "Recent training jobs" in dashboard


# --------------------------------------------------------------------------- audit


def verbs_listed(response) -> list[str]:
    assert response.status_code == 200
    return [row["event"].verb for row in response.context["rows"]]


def test_audit_list_filters_by_actor_verb_subject_and_date(client, org):
    decision = decide(org)
    login(client, org.auditor)
    everything = verbs_listed(client.get("/audit/?per_page=200"))
    assert {"agent.decided", "workflow.created", "decision.pending_review"} <= set(everything)
    assert set(verbs_listed(client.get("/audit/", {"verb": "agent.decided"}))) == {"agent.decided"}
    by_admin = verbs_listed(client.get("/audit/", {"actor": org.admin.user.username, "per_page": 200}))
    assert "workflow.created" in by_admin and "agent.decided" not in by_admin
    about = client.get("/audit/", {"subject_type": "workflows.decision", "subject_id": str(decision.pk)})
    assert verbs_listed(about) == ["decision.pending_review"]
    today = timezone.now().date()
    assert "agent.decided" in verbs_listed(client.get("/audit/", {"since": today.isoformat()}))
    old = client.get("/audit/", {"until": (today - timedelta(days=2)).isoformat()})
    assert verbs_listed(old) == [] and b"No events match these filters" in old.content
    bad = client.get("/audit/", {"since": "yesterday"})
    assert bad.status_code == 400 and b"expected a date as YYYY-MM-DD" in bad.content


def add_events(actor: Actor, count: int) -> None:
    from django.db import transaction

    from caseloop.audit.services import audit_record

    with transaction.atomic():
        for index in range(count):
            audit_record(actor=actor, verb="note.added", subject=("notes", index), payload={"n": index})


def test_audit_search_finds_words_in_explanations(client, org):
    decide(org)
    step = AuditEvent.objects.filter(verb="agent.decided").first()
    words = step.payload["explanation"].split()
    login(client, org.auditor)
    found = client.get("/audit/", {"q": words[0]}).content.decode()
    assert f'data-sequence="{step.sequence}"' in found
    nothing = client.get("/audit/", {"q": "zebra-crossing-unicorn"}).content.decode()
    assert "data-sequence=" not in nothing


def test_audit_list_pages_by_keyset_with_a_constant_number_of_queries(client, org):
    decide(org)
    add_events(org.admin, 120)
    total = AuditEvent.objects.filter(organization=org.admin.organization).count()
    assert total > 110
    login(client, org.auditor)
    small, _ = count_queries(client, "/audit/?per_page=10")
    large, large_page = count_queries(client, "/audit/?per_page=100")
    assert small == large, (small, large)
    assert large_page.count(b"data-sequence=") == 100
    # walk the whole trail by "Older" links: every event once, newest first, no OFFSET anywhere
    seen, url = [], "/audit/?per_page=25"
    with CaptureQueriesContext(connection) as queries:
        while url:
            response = client.get(url)
            sequences = [
                int(s)
                for s in response.context["rows"] and [r["event"].sequence for r in response.context["rows"]]
            ]
            seen += sequences
            older = response.context["page"].older
            url = f"/audit/?per_page=25&before={older}" if older else None
    assert seen == list(range(total, 0, -1))
    assert not any("OFFSET" in q["sql"].upper() for q in queries.captured_queries)
    newer = client.get(f"/audit/?per_page=25&after={seen[60]}").context
    assert [r["event"].sequence for r in newer["rows"]] == seen[35:60]


def test_an_events_payload_and_hashes_open_on_its_own_page(client, org):
    decide(org)
    step = AuditEvent.objects.filter(verb="agent.decided").first()
    login(client, org.auditor)
    listing = client.get("/audit/").content.decode()
    assert f'hx-get="/audit/events/{step.sequence}/?fragment=1"' in listing
    assert step.hash not in listing  # the list leaves payloads and hashes to the event's page
    page = client.get(f"/audit/events/{step.sequence}/").content.decode()
    assert step.hash in page and step.prev_hash in page and "probabilities" in page
    fragment = client.get(f"/audit/events/{step.sequence}/?fragment=1").content.decode()
    assert "<html" not in fragment and step.hash in fragment
    stranger = make_actor(role=Role.AUDITOR)
    assert login(client, stranger).get(f"/audit/events/{step.sequence}/").status_code == 404


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.EXPERT])
def test_audit_pages_are_for_auditors_and_admins(client, org, role):
    actor = {Role.REVIEWER: org.reviewer, Role.EXPERT: org.expert}[role]
    login(client, actor)
    for url in ("/audit/", "/audit/events/1/", "/audit/export.jsonl", "/audit/export.csv"):
        assert client.get(url).status_code == 403
    assert client.post("/audit/verify/").status_code == 403


def test_verify_reports_an_intact_chain_and_names_the_first_broken_link(client, org):
    decide(org)
    login(client, org.auditor)
    response = client.post("/audit/verify/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'data-ok="true"' in response.content and b"The chain verifies" in response.content
    last = AuditEvent.objects.filter(organization=org.admin.organization).order_by("-sequence").first()
    # An event appended behind the chain's back (the table refuses UPDATE, not INSERT):
    AuditEvent.objects.create(
        organization=org.admin.organization,
        sequence=last.sequence + 1,
        created_at=timezone.now(),
        actor_kind="user",
        actor_ref="0",
        actor_label="intruder",
        verb="case.created",
        subject_type="workflows.case",
        subject_id="1",
        payload={},
        prev_hash=last.hash,
        hash="f" * 64,
    )
    page = client.post("/audit/verify/").content.decode()
    assert 'data-ok="false"' in page and f"at sequence {last.sequence + 1}" in page
    assert "hash does not match" in page


def test_exports_stream_the_whole_chain_with_its_head(client, org):
    decide(org)
    stranger = make_actor(role=Role.ADMIN)  # another organisation's events stay out
    login(client, org.auditor)
    response = client.get("/audit/export.jsonl")
    assert response.status_code == 200 and response.streaming
    assert "attachment;" in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode().splitlines()
    result = verify_export(lines)
    assert result.ok, result.first_break
    ours = AuditEvent.objects.filter(organization=org.admin.organization).count()
    assert result.checked == ours and set(result.heads) == {org.admin.organization.pk}
    assert stranger.organization.pk not in result.heads

    response = client.get("/audit/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == ours + 1
    assert rows[-1]["verb"] == "chain_head" and rows[-1]["hash"] == result.heads[org.admin.organization.pk][1]
    assert (
        json.loads(rows[0]["payload"])
        == AuditEvent.objects.get(organization=org.admin.organization, sequence=1).payload
    )


# --------------------------------------------------------------------------- organisation admin


def test_admin_creates_a_member_changes_the_role_and_removes_them(client, org):
    login(client, org.admin)
    page = client.get("/organization/members/")
    assert page.status_code == 200 and org.reviewer.user.username.encode() in page.content
    weak = client.post(
        "/organization/members/", {"username": "dana", "password": "short", "role": Role.REVIEWER}
    )
    assert weak.status_code == 400 and b"too short" in weak.content
    response = client.post(
        "/organization/members/",
        {
            "username": "dana",
            "email": "dana@example.com",
            "password": "a long safe passphrase",
            "role": "reviewer",
        },
    )
    assert response.status_code == 302
    dana = Membership.objects.get(organization=org.admin.organization, user__username="dana")
    assert dana.role == Role.REVIEWER
    taken = client.post(
        "/organization/members/",
        {"username": "dana", "password": "a long safe passphrase", "role": "auditor"},
    )
    assert taken.status_code == 400 and b"is taken" in taken.content
    client.post(f"/organization/members/{dana.user_id}/role/", {"role": Role.AUDITOR})
    assert Membership.objects.get(pk=dana.pk).role == Role.AUDITOR
    client.post(f"/organization/members/{dana.user_id}/remove/")
    assert not Membership.objects.filter(pk=dana.pk).exists()
    assert AuditEvent.objects.filter(verb="membership.removed", actor_ref=str(org.admin.user.pk)).exists()


def test_the_last_admin_keeps_the_role_and_cannot_be_removed(client, org):
    login(client, org.admin)
    response = client.post(
        f"/organization/members/{org.admin.user.pk}/role/", {"role": Role.REVIEWER}, follow=True
    )
    assert b"The last admin" in response.content
    response = client.post(f"/organization/members/{org.admin.user.pk}/remove/", follow=True)
    assert b"last admin" in response.content
    assert Membership.objects.get(user=org.admin.user).role == Role.ADMIN


def test_an_existing_login_joins_another_organisation(client, org):
    stranger = make_actor(role=Role.ADMIN)
    login(client, org.admin)
    response = client.post(
        "/organization/members/", {"existing_username": stranger.user.username, "existing_role": "auditor"}
    )
    assert response.status_code == 302
    assert (
        Membership.objects.get(user=stranger.user, organization=org.admin.organization).role == Role.AUDITOR
    )
    missing = client.post(
        "/organization/members/", {"existing_username": "nobody", "existing_role": "auditor"}
    )
    assert missing.status_code == 400 and b"No login has that username" in missing.content


def test_api_key_secret_is_shown_once_and_revoking_it_stops_it(client, org):
    from caseloop.accounts.services import api_key_authenticate

    login(client, org.admin)
    response = client.post("/organization/api-keys/", {"name": "claims intake", "scopes": ["cases:write"]})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    secret = response.context["secret"]
    assert secret.startswith("cl_") and secret.encode() in response.content
    key = ApiKey.objects.get(name="claims intake")
    assert key.scopes == ["cases:write"] and api_key_authenticate(secret) == key
    listing = client.get("/organization/api-keys/")
    assert secret.encode() not in listing.content and key.prefix.encode() in listing.content
    bad = client.post("/organization/api-keys/", {"name": "", "scopes": []})
    assert bad.status_code == 400 and ApiKey.objects.count() == 1
    client.post(f"/organization/api-keys/{key.pk}/revoke/")
    assert api_key_authenticate(secret) is None


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.EXPERT, Role.AUDITOR])
def test_organisation_admin_pages_are_for_admins_only(client, org, role):
    actor = {Role.REVIEWER: org.reviewer, Role.EXPERT: org.expert, Role.AUDITOR: org.auditor}[role]
    login(client, actor)
    assert client.get("/organization/members/").status_code == 403
    assert client.get("/organization/api-keys/").status_code == 403
    response = client.post(
        "/organization/members/", {"username": "eve", "password": "a long safe passphrase", "role": "admin"}
    )
    assert response.status_code == 403
    assert client.post(f"/organization/members/{actor.user.pk}/role/", {"role": "admin"}).status_code == 403
    assert Membership.objects.get(user=actor.user).role == role


def test_another_organisations_members_and_keys_are_out_of_reach(client, org):
    from caseloop.accounts.services import api_key_create

    key, _ = api_key_create(actor=org.admin, name="theirs", scopes=["cases:read"])
    stranger = make_actor(role=Role.ADMIN)
    login(client, stranger)
    assert client.post(f"/organization/members/{org.reviewer.user.pk}/remove/").status_code == 404
    assert client.post(f"/organization/api-keys/{key.pk}/revoke/").status_code == 404
    assert org.reviewer.user.username.encode() not in client.get("/organization/members/").content
    assert ApiKey.objects.get(pk=key.pk).is_active


def test_member_list_query_count_does_not_grow_with_members(client, org):
    login(client, org.admin)
    first, _ = count_queries(client, "/organization/members/")
    for _ in range(30):
        org.member(Role.REVIEWER)
    more, page = count_queries(client, "/organization/members/")
    assert first == more, (first, more)
    assert page.count(b"data-member=") == 34  # the four of the fixture and thirty more
