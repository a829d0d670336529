"""Idempotency keys: the first response to each (organisation, credential, key), for replay."""

from __future__ import annotations

from django.db import models

from caseloop.accounts.models import Organization


class IdempotencyKey(models.Model):
    """A POST made with an ``Idempotency-Key`` header and the response it got.

    The row is inserted and completed in the same transaction as the request's work, so a
    committed row always holds its response, and a concurrent duplicate waits on the unique index
    until the first request has committed (then replays it) or rolled back (then does the work)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    credential = models.CharField(max_length=64, help_text="api_key:<id> or user:<id>")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path, query and body.")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.TextField(blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "credential", "key"], name="idempotency_key_unique_per_credential"
            )
        ]

    def __str__(self) -> str:
        return f"{self.credential} {self.key}"
