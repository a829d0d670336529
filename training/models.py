"""Policies (decision makers) and their versions. Training jobs and evaluations join them later."""

from __future__ import annotations

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
    config = models.JSONField(default=dict, help_text="The rules of a rules policy; the net's shape for mlp/lm.")
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
