"""Reference data for the claims pack: the policy register and the claim history.

You are in the claims pack's records room. ``generate_tables(seed)`` builds a synthetic but
plausible book of motor policies — holders, status (active, lapsed, cancelled), one-year terms,
coverage packages, per-coverage or overall limits, deductibles — and the claims filed on them,
including a minority of frequent claimants whose claims cluster in time. Same seed, same tables.

Columns
- policies: policy_number, holder, status, effective_date, expiry_date, coverages
  ("liability;collision;glass"), limit (overall limit or null), coverage_limits
  ("collision:25000;glass:1500", per-coverage limits that take precedence), deductible.
- claim_history: policy_number, date, claim_type, amount, outcome (paid, denied, withdrawn).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

__all__ = ["CLAIM_AMOUNT_RANGES", "FIRST_NAMES", "LAST_NAMES", "generate_tables", "one_year_after"]

FIRST_NAMES = (
    "Maria",
    "James",
    "Aisha",
    "Liam",
    "Sofia",
    "Noah",
    "Chen",
    "Olivia",
    "Mateo",
    "Emma",
    "Yusuf",
    "Ava",
    "Lucas",
    "Priya",
    "Ethan",
    "Zoe",
    "Hiroshi",
    "Isabella",
    "Kwame",
    "Mia",
    "Daniel",
    "Fatima",
    "Leo",
    "Grace",
    "Omar",
    "Hannah",
    "Ivan",
    "Chloe",
    "Samuel",
    "Elena",
    "Tomas",
    "Nora",
    "Ahmed",
    "Lucy",
)
LAST_NAMES = (
    "Keller",
    "Okafor",
    "Rossi",
    "Nguyen",
    "Smith",
    "Garcia",
    "Kowalski",
    "Haddad",
    "Johansson",
    "Patel",
    "Dubois",
    "Moreau",
    "Tanaka",
    "Schmidt",
    "Costa",
    "Murphy",
    "Novak",
    "Fischer",
    "Silva",
    "Brown",
    "Ibrahim",
    "Larsen",
    "Mensah",
    "Ortiz",
    "Weber",
    "Yilmaz",
    "Andersen",
    "Popescu",
    "Walsh",
    "Kim",
)

# Typical size of a claim per peril (low, high), in the policy currency.
CLAIM_AMOUNT_RANGES: dict[str, tuple[float, float]] = {
    "collision": (1_500.0, 22_000.0),
    "theft": (3_000.0, 24_000.0),
    "vandalism": (300.0, 6_000.0),
    "weather": (800.0, 15_000.0),
    "fire": (4_000.0, 24_000.0),
    "glass": (150.0, 1_800.0),
    "liability": (2_000.0, 24_000.0),
}
# Per-coverage limit choices, when a policy has them.
_COVERAGE_LIMITS: dict[str, tuple[int, ...]] = {
    "collision": (20_000, 25_000, 30_000, 40_000, 50_000, 60_000),
    "theft": (15_000, 20_000, 30_000, 40_000, 50_000),
    "vandalism": (5_000, 7_500, 10_000, 15_000),
    "weather": (10_000, 15_000, 25_000, 40_000),
    "fire": (20_000, 30_000, 45_000, 60_000),
    "glass": (1_000, 1_500, 2_000, 3_000),
    "liability": (50_000, 100_000, 250_000),
}
_PACKAGES = (
    (("liability",), 0.15),
    (("liability", "collision", "glass"), 0.35),
    (("liability", "collision", "glass", "theft", "vandalism", "weather", "fire"), 0.50),
)
_OPTIONAL_IN_COMPREHENSIVE = ("vandalism", "weather", "fire", "glass")
_DEDUCTIBLES = (250.0, 500.0, 750.0, 1_000.0, 1_500.0)
_DEDUCTIBLE_WEIGHTS = (0.20, 0.35, 0.15, 0.20, 0.10)
_FIRST_EFFECTIVE = date(2023, 1, 1)
_LAST_EFFECTIVE = date(2025, 6, 30)


def one_year_after(start: date) -> date:
    """Expiry of a one-year term starting on ``start`` (the day before the anniversary)."""
    try:
        anniversary = start.replace(year=start.year + 1)
    except ValueError:  # 29 February
        anniversary = start.replace(year=start.year + 1, day=28) + timedelta(days=1)
    return anniversary - timedelta(days=1)


def _random_date(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, max((end - start).days, 0)))


def _amount(rng: random.Random, peril: str, scale: float = 1.0) -> float:
    low, high = CLAIM_AMOUNT_RANGES[peril]
    return round(rng.uniform(low, high) * scale, 2)


def _policy(rng: random.Random, number: str) -> dict[str, Any]:
    packages, weights = zip(*_PACKAGES, strict=True)
    coverages = list(rng.choices(packages, weights)[0])
    if len(coverages) > 3 and rng.random() < 0.4:
        coverages.remove(rng.choice(_OPTIONAL_IN_COMPREHENSIVE))
    effective = _random_date(rng, _FIRST_EFFECTIVE, _LAST_EFFECTIVE)
    status = rng.choices(("active", "lapsed", "cancelled"), (0.80, 0.12, 0.08))[0]
    overall: float | None = None
    per_coverage: dict[str, int] = {}
    style = rng.random()
    if style < 0.5:  # per-coverage limits only
        per_coverage = {peril: rng.choice(_COVERAGE_LIMITS[peril]) for peril in coverages}
    else:  # an overall limit, sometimes with a glass sub-limit
        overall = float(rng.choice((15_000, 20_000, 25_000, 30_000, 50_000, 75_000, 100_000)))
        if "glass" in coverages and rng.random() < 0.5:
            per_coverage["glass"] = rng.choice(_COVERAGE_LIMITS["glass"])
    return {
        "policy_number": number,
        "holder": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        "status": status,
        "effective_date": effective.isoformat(),
        "expiry_date": one_year_after(effective).isoformat(),
        "coverages": ";".join(coverages),
        "limit": overall,
        "coverage_limits": ";".join(f"{peril}:{limit}" for peril, limit in per_coverage.items()),
        "deductible": rng.choices(_DEDUCTIBLES, _DEDUCTIBLE_WEIGHTS)[0],
    }


def _history(rng: random.Random, policy: dict[str, Any]) -> list[dict[str, Any]]:
    effective = date.fromisoformat(policy["effective_date"])
    expiry = date.fromisoformat(policy["expiry_date"])
    perils = policy["coverages"].split(";")
    kind = rng.random()
    if kind < 0.50:
        dates: list[date] = []
    elif kind < 0.78:
        dates = [_random_date(rng, effective - timedelta(days=365), expiry)]
    elif kind < 0.88:
        dates = [_random_date(rng, effective - timedelta(days=365), expiry) for _ in range(2)]
    else:
        # Frequent claimant: 3-5 claims within about seven months around the start of the term.
        start = _random_date(rng, effective - timedelta(days=90), effective + timedelta(days=60))
        dates = [_random_date(rng, start, start + timedelta(days=210)) for _ in range(rng.randint(3, 5))]
    rows = []
    for on in sorted(dates):
        peril = rng.choice(perils)
        rows.append(
            {
                "policy_number": policy["policy_number"],
                "date": on.isoformat(),
                "claim_type": peril,
                "amount": _amount(rng, peril, 0.6),
                "outcome": rng.choices(("paid", "denied", "withdrawn"), (0.75, 0.2, 0.05))[0],
            }
        )
    return rows


def generate_tables(seed: int, *, policy_count: int = 400) -> dict[str, list[dict[str, Any]]]:
    """The policy register and claim history for ``seed`` (deterministic)."""
    rng = random.Random(f"claims-tables:{seed}")
    numbers = rng.sample(range(100_000, 900_000), policy_count)
    policies = [_policy(rng, f"AUT-{number}") for number in numbers]
    history = [row for policy in policies for row in _history(rng, policy)]
    policies.sort(key=lambda row: row["policy_number"])
    history.sort(key=lambda row: (row["policy_number"], row["date"]))
    return {"policies": policies, "claim_history": history}
