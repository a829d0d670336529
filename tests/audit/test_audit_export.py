"""Exporting the chain as JSONL, and re-verifying an export without the database."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction

from caseloop.accounts.permissions import Actor
from caseloop.audit.chain import GENESIS_HASH
from caseloop.audit.export import ExportBreak, verify_export, verify_export_file
from caseloop.audit.models import AuditEvent
from caseloop.audit.selectors import audit_verify
from caseloop.audit.services import audit_record
from tests.factories import make_actor

pytestmark = pytest.mark.django_db


def _chain(actor: Actor, n: int = 4) -> list[AuditEvent]:
    payloads: list[dict[str, Any]] = [
        {"amount": Decimal("10.10"), "due": date(2026, 5, 1)},
        {"name": "Zoë «quoted» \\ back\\slash", "nested": {"b": [1, 2.5, None], "a": True}},
        {"ratio": 1e-7, "big": 2**53 + 1},
        {},
    ]
    for i in range(n):
        with transaction.atomic():
            audit_record(
                actor=actor,
                verb="test.event",
                subject=("thing", i),
                payload=payloads[i % 4],
                request_id=f"r{i}",
            )
    return list(AuditEvent.objects.filter(organization=actor.organization).order_by("sequence"))


def _first_break(lines: list[str]) -> ExportBreak:
    result = verify_export(lines)
    assert result.first_break is not None, "the export verified"
    assert not result.ok
    return result.first_break


def _export(tmp_path: Path, *args: str) -> Path:
    path = tmp_path / "audit.jsonl"
    call_command("audit_export", *args, "--output", str(path), stderr=StringIO())
    return path


def test_an_export_re_verifies_and_ends_with_the_chain_head(tmp_path):
    actor = make_actor()
    events = _chain(actor)
    path = _export(tmp_path, "--org", actor.organization.slug)

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(events) + 1
    first = json.loads(lines[0])
    assert (first["id"], first["sequence"], first["prev_hash"]) == (events[0].pk, 1, GENESIS_HASH)
    head = json.loads(lines[-1])["chain_head"]
    assert (head["organization"], head["sequence"], head["hash"]) == (
        actor.organization.slug,
        5,
        events[-1].hash,
    )
    assert head["exported_at"]

    result = verify_export_file(path)
    assert result.ok, result.first_break
    assert result.checked == len(events)
    verified = audit_verify(organization=actor.organization).head
    assert verified is not None
    assert (
        result.heads
        == {actor.organization.pk: (verified.sequence, verified.hash)}
        == {actor.organization.pk: (5, events[-1].hash)}
    )


def test_an_edited_line_is_named(tmp_path):
    actor = make_actor()
    events = _chain(actor)
    path = _export(tmp_path, "--org", actor.organization.slug)
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[2])
    record["payload"]["name"] = "Someone else"
    lines[2] = json.dumps(record)

    broken = _first_break(lines)
    assert (broken.line, broken.sequence, broken.id) == (3, 3, events[2].pk)
    assert broken.found_hash == events[2].hash
    assert "hash does not match" in broken.reason
    assert verify_export(lines).checked == 2


def test_a_removed_line_is_named_as_a_gap(tmp_path):
    actor = make_actor()
    events = _chain(actor)
    lines = _export(tmp_path).read_text(encoding="utf-8").splitlines()
    ours = [i for i, line in enumerate(lines) if f'"organization_id":{actor.organization.pk},' in line]
    del lines[ours[1]]

    broken = _first_break(lines)
    assert (broken.line, broken.sequence, broken.id) == (ours[1] + 1, 3, events[2].pk)
    assert "sequence gap" in broken.reason


def test_an_export_cut_short_or_with_another_head_fails(tmp_path):
    actor = make_actor()
    _chain(actor)
    lines = _export(tmp_path, "--org", actor.organization.slug).read_text(encoding="utf-8").splitlines()

    cut = _first_break(lines[:-1])
    assert "without this organisation's chain_head" in cut.reason

    head = json.loads(lines[-1])
    head["chain_head"]["hash"] = "e" * 64
    moved = _first_break([*lines[:-1], json.dumps(head)])
    assert (moved.line, moved.found_hash) == (len(lines), "e" * 64)


def test_exporting_every_organisation_gives_each_its_head(tmp_path):
    first, second = make_actor(), make_actor()
    _chain(first, 2)
    _chain(second, 3)
    result = verify_export_file(_export(tmp_path))
    assert result.ok, result.first_break
    assert result.heads[first.organization.pk][0] == 3
    assert result.heads[second.organization.pk][0] == 4


def test_the_export_goes_to_standard_output_without_a_file():
    actor = make_actor()
    _chain(actor, 1)
    out = StringIO()
    call_command("audit_export", "--org", actor.organization.slug, stdout=out)
    assert verify_export(out.getvalue().splitlines()).ok
