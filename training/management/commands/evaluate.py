"""``manage.py evaluate --version ID [--split validation|test]``: score a policy version and print
the report beside the baselines and production."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from caseloop.accounts.permissions import Actor
from training.models import EvaluationReport, PolicyVersion
from training.services.evaluation import policy_evaluate

COLUMNS = (
    ("score/mean", "score"),
    ("outcome/accuracy", "accuracy"),
    ("amount/mae", "amount MAE"),
    ("gates/triggered", "gates"),
)


def print_report(out, report: EvaluationReport) -> None:
    out.write(f"\nEvaluation of {report.policy_version} on {report.n_cases} {report.split} cases")
    rows = [(str(report.policy_version), report.metrics)]
    if report.production is not None:
        rows.append((f"production: {report.production_version}", report.production))
    rows += [(name, metrics) for name, metrics in report.baselines.items()]
    out.write(f"  {'policy':<34}" + "".join(f"{label:>12}" for _, label in COLUMNS))
    for name, metrics in rows:
        cells = []
        for key, _ in COLUMNS:
            value = metrics.get(key)
            cells.append(f"{value:>12.3f}" if isinstance(value, float) else f"{value!s:>12}")
        out.write(f"  {name[:34]:<34}" + "".join(cells))
    confusion = report.metrics.get("confusion", {})
    if confusion:
        chosen = sorted({c for row in confusion.values() for c in row})
        out.write("  confusion (rows expected, columns chosen):")
        out.write(f"    {'':<12}" + "".join(f"{c:>10}" for c in chosen))
        for expected, row in sorted(confusion.items()):
            out.write(f"    {expected:<12}" + "".join(f"{row.get(c, 0):>10}" for c in chosen))


class Command(BaseCommand):
    help = "Evaluate a policy version on a split against the baselines and the production version."

    def add_arguments(self, parser):
        parser.add_argument("--version", type=int, required=True, help="PolicyVersion id.")
        parser.add_argument("--split", default="validation", choices=["train", "validation", "test"])
        parser.add_argument("--limit", type=int, help="Evaluate on at most this many cases.")

    def handle(self, *args, version: int, split: str, limit: int | None, **options):
        target = PolicyVersion.objects.select_related("policy__organization").filter(pk=version).first()
        if target is None:
            raise CommandError(f"--version: no policy version {version}")
        actor = Actor.for_system(target.policy.organization)
        try:
            report = policy_evaluate(actor=actor, version=target, split=split, limit=limit)
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        print_report(self.stdout, report)
