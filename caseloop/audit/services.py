"""Writing to the audit trail. Every state-changing service calls :func:`audit_record` inside its
own transaction, so the change and its event commit or roll back together."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from caseloop.audit.chain import chain_hash, event_content
from caseloop.audit.models import AuditChainHead, AuditEvent

if TYPE_CHECKING:
    from caseloop.accounts.permissions import Actor


def _jsonable(payload: Any) -> Any:
    # Decimals, dates and UUIDs become strings once, here, so the stored payload and the hashed one agree.
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def _locked_head(organization_id: int) -> AuditChainHead:
    """Lock the organisation's chain head row; create it first if this is the organisation's first event."""
    heads = AuditChainHead.objects.select_for_update()
    head = heads.filter(organization_id=organization_id).first()
    if head is None:
        # Two first writers may race here: ignore_conflicts lets both go on to lock the one row.
        AuditChainHead.objects.bulk_create([AuditChainHead(organization_id=organization_id)], ignore_conflicts=True)
        head = heads.get(organization_id=organization_id)
    return head


def audit_record(
    *,
    actor: Actor,
    verb: str,
    subject: models.Model | tuple[str, str | int],
    payload: dict[str, Any] | None = None,
    request_id: str = "",
) -> AuditEvent:
    """Append one event to the actor's organisation's chain. Must run inside the caller's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must be called inside the transaction that makes the change")
    if isinstance(subject, models.Model):
        subject_type, subject_id = subject._meta.label_lower, str(subject.pk)
    else:
        subject_type, subject_id = subject[0], str(subject[1])
    organization = actor.organization
    head = _locked_head(organization.pk)
    sequence = head.sequence + 1
    created_at = timezone.now()
    clean_payload = _jsonable(payload or {})
    content = event_content(
        organization_id=organization.pk,
        sequence=sequence,
        created_at=created_at,
        actor_kind=actor.kind,
        actor_ref=actor.ref,
        actor_label=actor.label,
        verb=verb,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=clean_payload,
        request_id=request_id,
    )
    digest = chain_hash(head.hash, content)
    event = AuditEvent.objects.create(
        organization=organization,
        sequence=sequence,
        created_at=created_at,
        actor_kind=actor.kind,
        actor_ref=actor.ref,
        actor_label=actor.label,
        verb=verb,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=clean_payload,
        request_id=request_id,
        prev_hash=head.hash,
        hash=digest,
    )
    AuditChainHead.objects.filter(pk=head.pk).update(sequence=sequence, hash=digest)
    return event
