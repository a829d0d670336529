"""``manage.py audit_verify [--org SLUG]``: recompute the audit chains and name the first broken link.

Exits 0 and prints OK with the count and chain head when every chain verifies; otherwise prints
the broken link (organisation, sequence, event id, expected and found hash) and exits non-zero.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from caseloop.accounts.models import Organization
from caseloop.audit.selectors import DEFAULT_BATCH_SIZE, audit_verify


class Command(BaseCommand):
    help = "Verify the tamper-evident audit chain of one organisation, or of all of them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="Verify only this organisation's chain.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help="Rows fetched per round trip while streaming.",
        )

    def handle(self, *args: Any, org: str | None, batch_size: int, **options: Any) -> None:
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"No organisation with the slug {org!r}.")
        started = time.perf_counter()
        result = audit_verify(organization=organization, batch_size=batch_size)
        elapsed = time.perf_counter() - started
        if result.first_break is not None:
            raise CommandError(
                f"audit chain BROKEN after {result.checked} good events. First broken link:\n"
                f"{result.first_break}"
            )
        self.stdout.write(
            self.style.SUCCESS(f"OK: {result.checked} events verified in {elapsed:.2f}s")
            + f" across {len(result.heads)} organisation(s)"
        )
        for head in result.heads:
            self.stdout.write(f"  {head.organization}: chain head #{head.sequence} {head.hash}")
