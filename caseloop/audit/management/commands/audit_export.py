"""``manage.py audit_export [--org SLUG] [--output FILE]``: write the audit trail as JSONL.

One event a line, each organisation's events followed by its ``chain_head`` line, so a third party
can re-verify the file with :func:`caseloop.audit.export.verify_export_file` (format documented there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from caseloop.accounts.models import Organization
from caseloop.audit.selectors import audit_export_lines


class Command(BaseCommand):
    help = "Export the audit trail (JSONL with each chain's head) for independent re-verification."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="Export only this organisation's chain.")
        parser.add_argument("--output", metavar="FILE", help="Write here instead of standard output.")

    def handle(self, *args: Any, org: str | None, output: str | None, **options: Any) -> None:
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"No organisation with the slug {org!r}.")
        lines = audit_export_lines(organization=organization)
        if output is None:
            for line in lines:
                self.stdout.write(line)
            return
        path = Path(output)
        # Write beside the target, then rename: a failed export never leaves a plausible partial file.
        partial = path.with_name(f".{path.name}.partial")
        events = heads = 0
        try:
            with open(partial, "w", encoding="utf-8") as out:
                for line in lines:
                    out.write(line + "\n")
                    # Lines are canonical JSON (sorted keys), so a head line starts with its only key.
                    if line.startswith('{"chain_head":'):
                        heads += 1
                    else:
                        events += 1
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        self.stderr.write(f"Exported {events} events and {heads} chain head(s) to {path}")
