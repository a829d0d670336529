"""Policies (decision makers) and their versions. Training jobs and evaluations join them later."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from caseloop.accounts.models import Organization
from workflows.models import Workflow


class PolicyKind(models.TextChoices):
    RULES = "rules", "Expert rules"
    MLP = "mlp", "Neural (MLP)"
    LM = "lm", "Language model"


class Stage(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    SHADOW = "shadow", "Shadow"
    SUPERVISED = "supervised", "Supervised"
    AUTONOMOUS = "autonomous", "Autonomous"
    RETIRED = "retired", "Retired"


PRODUCTION_STAGES = (Stage.SUPERVISED, Stage.AUTONOMOUS)


class Policy(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="policies")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="policies")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=PolicyKind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workflow", "name"], name="policy_unique_name")]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name


class PolicyVersion(models.Model):
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.CANDIDATE)
    config = models.JSONField(
        default=dict, help_text="The rules of a rules policy; the net's shape for mlp/lm."
    )
    artifact_path = models.CharField(max_length=500, blank=True)
    artifact_hash = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["policy_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["policy", "number"], name="policy_version_unique")]

    def __str__(self) -> str:
        return f"{self.policy.name} v{self.number}"

    @property
    def organization_id(self) -> int:
        return self.policy.organization_id


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_JOB_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class TrainingJob(models.Model):
    """One training run of a policy on a workflow; its progress and checkpoints persist as it goes."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="training_jobs")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="training_jobs")
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="training_jobs")
    rubric_version = models.ForeignKey(
        "workflows.RubricVersion", on_delete=models.PROTECT, related_name="training_jobs"
    )
    algorithm = models.CharField(max_length=16, default="ppo")
    config = models.JSONField(help_text="The validated algorithm config, every field explicit.")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1")
    update = models.PositiveIntegerField(default=0, help_text="Updates done (from the last checkpoint).")
    total_updates = models.PositiveIntegerField(default=0)
    checkpoint_dir = models.CharField(max_length=500, blank=True)
    checkpoint_update = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker has claimed it.")
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    result_version = models.ForeignKey(
        PolicyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_jobs",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "status"], name="job_org_status")]

    def __str__(self) -> str:
        return f"training job {self.pk} ({self.algorithm}, {self.status})"


class TrainingMetric(models.Model):
    """One update's metrics: the series behind the reward curves."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metric_points")
    update = models.PositiveIntegerField()
    env_steps = models.PositiveBigIntegerField(default=0)
    values = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job_id", "update"]
        constraints = [models.UniqueConstraint(fields=["job", "update"], name="metric_unique_update")]

    def __str__(self) -> str:
        return f"{self.job_id}@{self.update}"


class EvaluationReport(models.Model):
    """A policy version scored on a split, side by side with the baselines and production."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="evaluations")
    policy_version = models.ForeignKey(PolicyVersion, on_delete=models.CASCADE, related_name="evaluations")
    split = models.CharField(max_length=16)
    rubric_version = models.ForeignKey(
        "workflows.RubricVersion", on_delete=models.PROTECT, related_name="evaluations"
    )
    n_cases = models.PositiveIntegerField()
    metrics = models.JSONField(
        help_text="Mean score, pass rate per criterion, accuracy, amount error, confusion."
    )
    baselines = models.JSONField(default=dict, help_text="The same metrics for each baseline policy.")
    production = models.JSONField(
        null=True, blank=True, help_text="The production version's metrics, if any."
    )
    production_version = models.ForeignKey(
        PolicyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"evaluation of {self.policy_version} on {self.split}"
