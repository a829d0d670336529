"""Workflows, their versions, reference data, rubrics, cases, and what policies did with the cases.

Models hold fields and constraints; every write goes through ``workflows.services``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from caseloop.accounts.models import Organization
from workflows.engine.environment import CaseData, Outcome


class Workflow(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="workflows")
    slug = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    pack = models.CharField(
        max_length=40, blank=True, help_text="Pack providing tools and generators, e.g. claims."
    )
    review_settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="Autonomy and review settings (workflows.review_settings); missing keys take defaults.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="workflow_unique_org_slug")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def latest_version(self) -> WorkflowVersion | None:
        return self.versions.order_by("-number").first()


class WorkflowVersion(models.Model):
    """An immutable snapshot of a workflow's spec (case schema, tools, decisions)."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    spec = models.JSONField()
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workflow_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="workflow_version_unique")]

    def __str__(self) -> str:
        return f"{self.workflow.name} v{self.number}"


class ReferenceTable(models.Model):
    """The environment's private data (policies, claim history, …): facts revealed only by tools."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="tables")
    name = models.SlugField(max_length=80)
    columns = models.JSONField(default=list)
    rows = models.JSONField(default=list)
    content_hash = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workflow", "name"], name="reference_table_unique")]

    def __str__(self) -> str:
        return f"{self.workflow.name}/{self.name}"


class Rubric(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="rubrics")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workflow", "name"], name="rubric_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def latest_version(self) -> RubricVersion | None:
        return self.versions.order_by("-number").first()


class RubricVersion(models.Model):
    """Weighted criteria. Editable as a draft until anything is scored with it, then frozen."""

    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    note = models.CharField(max_length=300, blank=True)
    frozen = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rubric_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["rubric", "number"], name="rubric_version_unique")]

    def __str__(self) -> str:
        return f"{self.rubric.name} v{self.number}"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VALIDATION = "validation", "Validation"
    TEST = "test", "Test"
    LIVE = "live", "Live"


class CaseSource(models.TextChoices):
    IMPORTED = "imported", "Imported"
    GENERATED = "generated", "Generated"
    API = "api", "API"
    REVIEW = "review", "Review"


class CaseStatus(models.TextChoices):
    NEW = "new", "New"
    QUEUED = "queued", "Queued for decision"
    DECIDED = "decided", "Decided"
    FAILED = "failed", "Failed"
    # A language-model policy's server was unreachable: queued again once it answers (beat).
    WAITING = "waiting", "Waiting for model"


class Case(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="cases")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="cases")
    workflow_version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="cases")
    external_id = models.CharField(max_length=120, blank=True)
    fields = models.JSONField()
    expected = models.JSONField(null=True, blank=True, help_text='{"decision": …, "arguments": {…}}')
    split = models.CharField(max_length=16, choices=Split.choices)
    source = models.CharField(max_length=16, choices=CaseSource.choices)
    difficulty = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.NEW)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "workflow", "split"], name="case_org_wf_split"),
            models.Index(fields=["organization", "status"], name="case_org_status"),
            # The case list: newest first, whole organisation or one workflow (see workflows.selectors).
            models.Index(fields=["organization", "-created_at", "-id"], name="case_org_newest"),
            models.Index(
                fields=["organization", "workflow", "-created_at", "-id"], name="case_org_wf_newest"
            ),
        ]

    def __str__(self) -> str:
        return self.external_id or f"case {self.pk}"

    def to_engine(self) -> CaseData:
        expected = (
            Outcome(self.expected["decision"], self.expected.get("arguments", {})) if self.expected else None
        )
        return CaseData(id=str(self.pk), fields=self.fields, expected=expected, difficulty=self.difficulty)


class Run(models.Model):
    """One episode of a policy version on a case, with the versions that defined it."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="runs")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="runs")
    workflow_version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="runs")
    rubric_version = models.ForeignKey(
        RubricVersion, null=True, on_delete=models.PROTECT, related_name="runs"
    )
    policy_version = models.ForeignKey(
        "training.PolicyVersion", on_delete=models.PROTECT, related_name="runs"
    )
    evaluation = models.ForeignKey(
        "training.EvaluationReport", null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    seed = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    total_reward = models.FloatField(null=True)
    score = models.FloatField(null=True)
    breakdown = models.JSONField(default=list)
    truncated = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["organization", "policy_version"], name="run_org_policy_version")]

    def __str__(self) -> str:
        return f"run {self.pk}"


class Step(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=16)  # tool, decision
    action = models.CharField(max_length=80)
    arguments = models.JSONField(default=dict)
    observation = models.JSONField(default=dict)
    result = models.JSONField(null=True)
    error = models.TextField(blank=True)
    explanation = models.TextField(blank=True)
    confidence = models.FloatField(null=True)
    probabilities = models.JSONField(default=dict)
    reward = models.FloatField(default=0.0)

    class Meta:
        ordering = ["run_id", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="step_unique_index")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.index} {self.action}"


class DecisionStatus(models.TextChoices):
    """A decision's life; the transitions are in ``workflows.services.decisions.TRANSITIONS``."""

    PROPOSED = "proposed", "Proposed"
    PENDING_REVIEW = "pending_review", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CORRECTED = "corrected", "Corrected"
    EXECUTED = "executed", "Executed"
    SHADOW = "shadow", "Shadow"  # a shadow version's decision: recorded and compared, never executed


class ReviewOutcome(models.TextChoices):
    """How review ended for a decision: what agreement with reviewers is measured on."""

    APPROVED = "approved", "Approved as proposed"
    CORRECTED = "corrected", "Corrected"
    REJECTED = "rejected", "Rejected"


class Decision(models.Model):
    """A run's outcome and its life. ``name`` and ``arguments`` are what the policy proposed and never
    change; ``outcome`` is what is executed (or would be): the proposal, or a reviewer's correction."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="decisions")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="decisions")
    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="decision")
    policy_version = models.ForeignKey(
        "training.PolicyVersion", on_delete=models.PROTECT, related_name="decisions"
    )
    name = models.CharField(max_length=80)
    arguments = models.JSONField(default=dict)
    explanation = models.JSONField(
        default=dict,
        help_text="Structured: text, facts (tool → result), cited, rule, criteria, confidence, "
        "alternatives, features.",
    )
    confidence = models.FloatField(null=True)
    status = models.CharField(max_length=16, choices=DecisionStatus.choices, default=DecisionStatus.PROPOSED)
    outcome = models.JSONField(
        null=True, blank=True, help_text='What is executed: {"decision": …, "arguments": {…}}.'
    )
    routing = models.JSONField(
        default=dict, blank=True, help_text="Why it was executed or sent to review: stage, confidence, risk."
    )
    risk_level = models.PositiveSmallIntegerField(
        default=0, help_text="Highest risk level of the rules that fired: 0 none, 1 low … 4 critical."
    )
    approvals_required = models.PositiveSmallIntegerField(default=1)
    review_round = models.PositiveSmallIntegerField(
        default=0, help_text="Bumped by each correction: approvals count within the current round."
    )
    review_requested_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_decisions",
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    review_outcome = models.CharField(max_length=16, choices=ReviewOutcome.choices, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "status"], name="decision_org_status"),
            models.Index(
                fields=["organization", "-risk_level", "review_requested_at"],
                name="decision_review_queue",
                condition=models.Q(status="pending_review"),
            ),
            models.Index(fields=["policy_version", "reviewed_at"], name="decision_version_reviewed"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=DecisionStatus.values), name="decision_status_known"
            ),
            models.CheckConstraint(
                condition=models.Q(approvals_required__gte=1, approvals_required__lte=2),
                name="decision_approvals_one_or_two",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.case}"


class Review(models.Model):
    """One reviewer's verdict on a decision. A rejection is the decision's negative label, with its
    reason; approvals and corrections that finalise a decision link the labelled case they made."""

    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        CORRECT = "correct", "Correct"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="reviews")
    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    round = models.PositiveSmallIntegerField(default=0, help_text="The decision's review round it counts in.")
    corrected_decision = models.CharField(max_length=80, blank=True)
    corrected_arguments = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    comment = models.TextField(blank=True)
    labelled_case = models.ForeignKey(
        Case,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The train case this verdict labelled (source review).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A reviewer counts once per round: the second of four eyes is someone else's.
            models.UniqueConstraint(
                fields=["decision", "round", "reviewer"], name="review_one_per_reviewer_per_round"
            ),
            models.CheckConstraint(
                condition=~models.Q(verdict="reject") | ~models.Q(reason=""), name="review_reject_has_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} by {self.reviewer} on {self.decision_id}"
