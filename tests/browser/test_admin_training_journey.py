"""An admin launches training in the browser, watches a real ``training`` worker's progress reach
completion without reloading, reads the evaluation and promotes the new version."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis
from django.conf import settings

from caseloop.accounts.models import Role
from caseloop.audit.models import AuditEvent
from caseloop.celery import app as celery_app
from tests.celery_workers import start_worker, stop_worker
from tests.factories import make_actor, make_claims_workflow
from training.models import JobStatus, PolicyVersion, Stage, TrainingJob

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
PASSWORD = "correct horse battery staple"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TINY = {
    "Total updates": "8",
    "Num envs": "16",
    "Rollout steps": "8",
    "Minibatches": "4",
    "Hidden size": "32",
    "Evaluate on at most": "20",
}
TINY_ADVANCED = {"Fit cases": "64", "Checkpoint every": "2", "Rollout workers": "1"}


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"admin-{name}.png"), full_page=True)


@pytest.fixture
def training_worker():
    """``celery worker -Q training`` against the test database; the web side stops running tasks
    eagerly, so the launch only queues the job."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    worker = start_worker("training", "browser-training", output=subprocess.PIPE)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield worker
    finally:
        celery_app.conf.task_always_eager = eager
        stop_worker(worker)


def test_admin_launches_training_watches_it_finish_reads_the_evaluation_and_promotes(
    page, live_server, training_worker
):
    admin = make_actor(role=Role.ADMIN)
    _, rules = make_claims_workflow(admin, cases=160)

    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(admin.user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Training").click()
    page.get_by_role("link", name="Launch training").click()
    page.get_by_role("heading", name="Launch training").wait_for()
    assert page.get_by_label("Total updates").input_value() == "3000"  # the config's default
    for label, value in TINY.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_text("Advanced PPO settings").click()
    for label, value in TINY_ADVANCED.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_label("Policy name").fill("Claims PPO")
    shot(page, "1-launch")
    page.get_by_role("button", name="Launch training").click()

    page.get_by_role("heading", name="Training job").wait_for()
    job = TrainingJob.objects.get()
    assert page.url.endswith(f"/training/jobs/{job.pk}/")
    assert job.config["ppo"]["total_updates"] == 8
    # From here on the page is never reloaded: the live panel polls itself every 2 s.
    page.evaluate("window.__sameDocument = true")
    status = page.get_by_test_id("job-status")
    progress_seen = set()
    for _ in range(120):  # up to 120 s on a busy machine; a tiny job takes ~15 s
        if training_worker.poll() is not None:
            pytest.fail(f"the training worker exited:\n{training_worker.stdout.read()}")
        progress_seen.add(page.get_by_role("progressbar").get_attribute("aria-valuenow"))
        if status.inner_text() in ("Succeeded", "Failed"):
            break
        if "Running" in status.inner_text() and len(progress_seen) == 2:
            shot(page, "2-running")
        page.wait_for_timeout(1000)
    assert status.inner_text() == "Succeeded", TrainingJob.objects.get().error
    assert page.evaluate("window.__sameDocument") is True
    assert page.get_by_test_id("job-updates").inner_text() == "8/8"
    assert "100" in progress_seen and len(progress_seen) >= 2, progress_seen
    assert page.locator("#job-live").get_attribute("data-active") == "false"  # polling stopped
    assert page.locator("#job-live svg.chart polyline").count() >= 2  # reward curves drawn
    shot(page, "3-finished")

    page.get_by_role("link", name="Evaluation on validation").click()
    page.get_by_role("heading", name="Confusion matrix").wait_for()
    comparison = page.get_by_test_id("comparison").inner_text()
    assert "production: Expert rules v1" in comparison and "reference_solver" in comparison
    assert page.get_by_test_id("confusion").locator("td.hit").count() >= 1
    shot(page, "4-evaluation")

    page.get_by_label("New stage").select_option("supervised")
    page.get_by_role("button", name="Review the promotion").click()
    page.get_by_role("heading", name="Promote Claims PPO v1 to supervised?").wait_for()
    version = PolicyVersion.objects.get(policy__name="Claims PPO")
    report = version.evaluations.get(split="validation")
    below = report.metrics["score/mean"] < report.production["score/mean"]
    if below:  # eight updates rarely beat the expert rules: the gate says why, forcing needs a reason
        assert "below production" in page.get_by_test_id("promotion-refusal").inner_text()
        page.get_by_role("button", name="Confirm: promote to supervised").click()
        assert "below production" in page.get_by_test_id("promotion-errors").inner_text()
        page.get_by_label("Force the promotion over the evaluation gate").check()
        page.get_by_role("textbox", name="Reason").fill("Pilot on low-value claims, reviewed one by one.")
    shot(page, "5-promote")
    page.get_by_role("button", name="Confirm: promote to supervised").click()
    page.get_by_test_id("version-stage").wait_for()
    assert page.get_by_test_id("version-stage").inner_text() == "Supervised"
    shot(page, "6-promoted")
    page.get_by_role("link", name="Dashboard").click()
    assert page.get_by_test_id("production-policy").inner_text() == "Claims PPO v1"
    assert f'href="/training/jobs/{job.pk}/"' in page.content()
    shot(page, "7-dashboard")

    assert PolicyVersion.objects.get(pk=version.pk).stage == Stage.SUPERVISED
    assert PolicyVersion.objects.get(pk=rules.pk).stage == Stage.RETIRED
    assert TrainingJob.objects.get().status == JobStatus.SUCCEEDED
    event = AuditEvent.objects.get(verb="policy_version.promoted", subject_id=str(version.pk))
    assert event.actor_label == admin.user.username
    assert bool(event.payload["forced_over"]) == below
