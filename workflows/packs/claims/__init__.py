"""The auto-insurance claims pack.

You are at the claims pack's front desk. ``PACK`` bundles the spec (spec.py), the reference
data generator (tables.py), the case generator with difficulty levels (generator.py), the
hidden rule book (adjudication.py), the pack tools (tools.py), the reference solver
(solver.py), the default rubric (rubric.py) and an imperfect expert's rules (rules.py).
"""

from __future__ import annotations

from workflows.packs import Pack

from .adjudication import adjudicate
from .generator import generate_cases
from .rubric import RUBRIC
from .rules import RULES
from .solver import ClaimsSolver
from .spec import SPEC
from .tables import generate_tables
from .tools import PACK_TOOLS

__all__ = ["PACK"]

PACK = Pack(
    name="claims",
    title="Auto insurance claims",
    description=SPEC["description"],
    spec_source=SPEC,
    rubric_source=RUBRIC,
    rules_source=RULES,
    pack_tools=PACK_TOOLS,
    generate_tables=generate_tables,
    generate_cases=generate_cases,
    solver=ClaimsSolver,
    adjudicate=adjudicate,
)
