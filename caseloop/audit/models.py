"""Audit events and each organisation's chain head.

``AuditEvent`` rows are append-only (a PostgreSQL trigger refuses UPDATE and DELETE).
``AuditChainHead`` holds the last sequence and hash of each organisation's chain; writers lock it
with SELECT … FOR UPDATE so two writers can never fork or gap the chain.
"""

from __future__ import annotations

from django.db import models

from caseloop.accounts.models import Organization
from caseloop.audit.chain import GENESIS_HASH


class AuditEvent(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="audit_events")
    sequence = models.PositiveBigIntegerField()
    created_at = models.DateTimeField()
    actor_kind = models.CharField(max_length=16)  # user, api_key, policy_version, system
    actor_ref = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=200)
    verb = models.CharField(max_length=64)
    subject_type = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    request_id = models.CharField(max_length=64, blank=True, default="")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["organization_id", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "sequence"], name="audit_event_unique_org_sequence"
            )
        ]
        # The auditors' list pages newest first within each filter: every filtered index ends in
        # sequence, so a page is an index range scan (keyset pagination), never a sort or an OFFSET.
        indexes = [
            models.Index(fields=["organization", "verb", "sequence"], name="audit_org_verb_seq"),
            models.Index(
                fields=["organization", "subject_type", "subject_id", "sequence"],
                name="audit_org_subject_seq",
            ),
            models.Index(fields=["organization", "actor_label", "sequence"], name="audit_org_actor_seq"),
            models.Index(fields=["organization", "created_at"], name="audit_org_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.verb} {self.subject_type}:{self.subject_id}"


class AuditChainHead(models.Model):
    organization = models.OneToOneField(
        Organization, on_delete=models.PROTECT, primary_key=True, related_name="audit_head"
    )
    sequence = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"{self.organization_id}@{self.sequence}"
