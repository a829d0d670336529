"""Case generator for the claims pack, with difficulty levels for curriculum learning.

You are in the claims pack's case factory. Each case is drawn for a scenario (a clean payment,
a lapsed policy, an uncovered peril, a late report, suspected fraud, a claim above the
adjuster's authority, a claim under the deductible, an inconsistent report) and then labelled
by the hidden adjudication, so the expected outcome is always what the rule book says — the
scenario only steers the mix. Difficulty moves cases towards the rule book's edges:

- 0: clear-cut — dates far from every boundary, amounts well inside limits, no stray signals;
- 1: noisier — some fraud signals that do not add up to fraud, partial payments above the limit;
- 2: near the edges — reports 31-34 days late, fraud scores just over 0.70, payouts just above
  25,000 or the deductible, incidents days from the end of the term, fraud signals on claims
  that fail for another reason first;
- 3: on the edges — reported exactly 30 vs 31 days after the incident, incident exactly on the
  expiry date or the day after, amount exactly the deductible, payout exactly 25,000.00 vs
  25,000.01, fraud score exactly 0.70 vs 0.65.

Only ``random.Random`` instances seeded from ``(seed, difficulty)`` are used: same arguments,
same cases.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from workflows.engine import CaseData, Outcome

from .adjudication import AUTHORITY_LIMIT, adjudicate
from .spec import PERILS
from .tables import CLAIM_AMOUNT_RANGES, FIRST_NAMES, LAST_NAMES
from .tools import (
    FRAUD_SIGNAL_POINTS,
    NEW_POLICY_DAYS,
    PHOTO_PERILS,
    PolicyRecord,
    find_policy,
    fraud_facts,
)

__all__ = ["DIFFICULTIES", "SCENARIOS", "generate_cases", "scenario_of"]

DIFFICULTIES = (0, 1, 2, 3)
SCENARIOS = (
    "approve",
    "policy_inactive",
    "not_covered",
    "late_report",
    "fraud_suspected",
    "high_value",
    "below_deductible",
    "needs_investigation",
)
_TARGETS: dict[str, tuple[str, str | None]] = {
    "approve": ("approve", None),
    "policy_inactive": ("deny", "policy_inactive"),
    "not_covered": ("deny", "not_covered"),
    "late_report": ("deny", "late_report"),
    "fraud_suspected": ("escalate", "fraud_suspected"),
    "high_value": ("escalate", "high_value"),
    "below_deductible": ("deny", "below_deductible"),
    "needs_investigation": ("escalate", "needs_investigation"),
}
_SCENARIO_WEIGHTS: dict[int, tuple[float, ...]] = {
    # approve, inactive, not_covered, late, fraud, high_value, below_deductible, investigation
    0: (0.42, 0.11, 0.10, 0.09, 0.11, 0.09, 0.08, 0.00),
    1: (0.41, 0.10, 0.10, 0.09, 0.11, 0.08, 0.09, 0.02),
    2: (0.40, 0.10, 0.09, 0.09, 0.11, 0.08, 0.10, 0.03),
    3: (0.36, 0.10, 0.08, 0.10, 0.12, 0.10, 0.09, 0.05),
}
_PERIL_WEIGHTS = {
    "collision": 0.33,
    "glass": 0.13,
    "theft": 0.12,
    "vandalism": 0.10,
    "weather": 0.12,
    "fire": 0.08,
    "liability": 0.12,
}
_SCORED_SCENARIOS = frozenset({"approve", "fraud_suspected", "high_value", "below_deductible"})
_HIGH_VALUE_PERILS = ("collision", "theft", "fire", "liability", "weather")
# Fraud points a case's signals should add up to, per difficulty: (low, high) inclusive.
_FRAUD_TARGET = {0: (85, 200), 1: (70, 95), 2: (70, 85), 3: (70, 70)}
_DISTRACTOR_TARGET = {0: (0, 0), 1: (0, 50), 2: (35, 65), 3: (50, 65)}
_MAX_TRIES = 60

_DESCRIPTIONS = {
    "collision": (
        "Rear-ended at a red light on {street}; bumper, boot lid and a tail light damaged.",
        "Side impact at the {street} roundabout; driver door and wing mirror damaged.",
        "Skidded on wet road near {street} and hit a lamp post; front end damaged.",
    ),
    "theft": (
        "Car stolen overnight from the street outside the house on {street}.",
        "Vehicle taken from the {street} car park while I was at work.",
    ),
    "vandalism": (
        "Paintwork keyed along both sides while parked on {street}.",
        "Windows smashed and tyres slashed overnight on {street}.",
    ),
    "weather": (
        "Hailstorm dented the roof and bonnet while parked on {street}.",
        "A tree branch fell on the car during the storm on {street}.",
    ),
    "fire": (
        "Engine fire on the drive home along {street}; car burnt out.",
        "Fire spread from a neighbouring garage on {street} to the car.",
    ),
    "glass": (
        "Stone chip on the motorway turned into a crack across the windscreen.",
        "Rear window shattered by a stray ball on {street}.",
    ),
    "liability": (
        "I reversed into a parked van on {street}; third party claims for repairs.",
        "Hit a cyclist's bicycle at the {street} junction; third party claims damages.",
    ),
}
_STREETS = (
    "Mill Lane",
    "High Street",
    "Station Road",
    "Elm Avenue",
    "Church Road",
    "Harbour Way",
    "Park Road",
)


@dataclass(frozen=True, slots=True)
class _Catalogue:
    """The tables, indexed for drawing cases."""

    tables: Mapping[str, Sequence[Mapping[str, Any]]]
    numbers: frozenset[str]
    active_covering: dict[str, list[PolicyRecord]]
    active_lacking: dict[str, list[PolicyRecord]]
    inactive: list[PolicyRecord]
    claim_dates: dict[str, list[date]]

    @classmethod
    def build(cls, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> _Catalogue:
        policies = [find_policy(tables, row["policy_number"]) for row in tables["policies"]]
        records = [policy for policy in policies if policy is not None]
        active = [policy for policy in records if policy.status == "active"]
        claim_dates: dict[str, list[date]] = {}
        for row in tables.get("claim_history", ()):
            claim_dates.setdefault(row["policy_number"], []).append(date.fromisoformat(row["date"]))
        for dates in claim_dates.values():
            dates.sort()
        return cls(
            tables=tables,
            numbers=frozenset(policy.number for policy in records),
            active_covering={peril: [p for p in active if peril in p.coverages] for peril in PERILS},
            active_lacking={peril: [p for p in active if peril not in p.coverages] for peril in PERILS},
            inactive=[policy for policy in records if policy.status != "active"],
            claim_dates=claim_dates,
        )


class _Draw:
    """One attempt at a case for a scenario; raises _Retry when the draw cannot work out."""

    def __init__(self, rng: random.Random, catalogue: _Catalogue, difficulty: int, scenario: str) -> None:
        self.rng = rng
        self.catalogue = catalogue
        self.difficulty = difficulty
        self.scenario = scenario

    # -- the pieces

    def peril(self) -> str:
        if self.scenario == "high_value":
            return self.rng.choice(_HIGH_VALUE_PERILS)
        perils, weights = zip(*_PERIL_WEIGHTS.items(), strict=True)
        return self.rng.choices(perils, weights)[0]

    def policy(self, peril: str) -> PolicyRecord | None:
        rng, catalogue, scenario = self.rng, self.catalogue, self.scenario
        if scenario == "not_covered":
            return _pick(rng, catalogue.active_lacking[peril])
        if scenario == "policy_inactive":
            mode = rng.random()
            if mode < 0.25:
                return None  # not in the register at all
            if mode < 0.6:
                return _pick(
                    rng, [p for p in catalogue.inactive if peril in p.coverages] or catalogue.inactive
                )
        candidates = catalogue.active_covering[peril]
        if scenario == "high_value":
            candidates = [
                p for p in candidates if p.limit_for(peril)[0] > AUTHORITY_LIMIT + p.deductible + 2_000
            ]
        return _pick(rng, candidates)

    def signal_plan(self, peril: str, policy: PolicyRecord | None) -> frozenset[str]:
        """Which fraud signals to switch on, so that their points land in the target range."""
        scenario, difficulty, rng = self.scenario, self.difficulty, self.rng
        if scenario == "fraud_suspected":
            low, high = _FRAUD_TARGET[difficulty]
        elif (
            difficulty >= 2
            and scenario in ("policy_inactive", "not_covered", "late_report")
            and rng.random() < 0.3
        ):
            low, high = _FRAUD_TARGET[1]  # conflicting signals: fraud-like, but an earlier rule decides
        else:
            low, high = _DISTRACTOR_TARGET[difficulty]
            if difficulty == 0 and rng.random() < 0.3:
                high = 20  # one weak signal now and then
        available = (
            ["slow_reporting", "new_policy"] if scenario not in ("late_report", "needs_investigation") else []
        )
        if peril == "theft":
            available.append("theft_without_police_report")
        if peril in PHOTO_PERILS:
            available.append("no_photos")
        if peril != "liability" and policy is not None:
            available.append("claimant_not_holder")
        if policy is not None and peril in policy.coverages and self._near_limit_possible(peril, policy):
            available.append("amount_near_limit")
        if policy is not None:
            count = len(self.catalogue.claim_dates.get(policy.number, ()))
            if count >= 3:
                available.append("frequent_claims")
            if count >= 2:
                available.append("repeat_claim")
        plans = [
            frozenset(combo)
            for size in range(len(available) + 1)
            for combo in itertools.combinations(available, size)
            if not {"frequent_claims", "repeat_claim"} <= set(combo)
            and low <= sum(FRAUD_SIGNAL_POINTS[s] for s in combo) <= high
        ]
        if not plans:
            raise _Retry
        if difficulty == 3 and scenario != "fraud_suspected":
            # Prefer plans sitting right under the threshold (0.65).
            top = max(sum(FRAUD_SIGNAL_POINTS[s] for s in plan) for plan in plans)
            if rng.random() < 0.6:
                plans = [plan for plan in plans if sum(FRAUD_SIGNAL_POINTS[s] for s in plan) == top]
        return rng.choice(plans)

    def _near_limit_possible(self, peril: str, policy: PolicyRecord) -> bool:
        limit, _ = policy.limit_for(peril)
        if self.scenario == "approve":
            return limit - policy.deductible <= AUTHORITY_LIMIT and limit > policy.deductible
        return self.scenario != "below_deductible"

    def incident(self, policy: PolicyRecord | None, plan: frozenset[str]) -> date:
        rng, difficulty = self.rng, self.difficulty
        if policy is None:
            return date(2024, 1, 1) + timedelta(days=rng.randint(0, 700))
        effective, expiry = policy.effective, policy.expiry
        if self.scenario == "policy_inactive" and policy.status == "active":
            # In the register and active, but the loss happened outside the term.
            gap = {0: (30, 200), 1: (5, 30), 2: (1, 3), 3: (1, 1)}[difficulty]
            days = rng.randint(*gap)
            return expiry + timedelta(days=days) if rng.random() < 0.6 else effective - timedelta(days=days)
        if {"frequent_claims", "repeat_claim"} & plan:
            dates = self.catalogue.claim_dates[policy.number]
            needed = 3 if "frequent_claims" in plan else 2
            start = max(dates[needed - 1] + timedelta(days=1), effective + timedelta(days=NEW_POLICY_DAYS))
            if "new_policy" in plan:
                start = max(dates[needed - 1] + timedelta(days=1), effective)
            end = min(expiry, dates[0] + timedelta(days=364))
            if start > end:
                raise _Retry
            return _random_date(rng, start, end)
        if "new_policy" in plan:
            offset = (
                rng.choice((0, NEW_POLICY_DAYS - 1))
                if difficulty == 3
                else rng.randint(0, NEW_POLICY_DAYS - 1)
            )
            return effective + timedelta(days=offset)
        earliest = effective + timedelta(days=NEW_POLICY_DAYS)
        if difficulty == 3 and rng.random() < 0.5:
            return rng.choice((expiry, earliest))  # exactly on the edge of the term, still covered
        if difficulty == 2 and rng.random() < 0.3:
            return expiry - timedelta(days=rng.randint(0, 3))
        latest = expiry - timedelta(days=10) if difficulty <= 1 else expiry
        return _random_date(rng, earliest + timedelta(days=1 if difficulty <= 1 else 0), latest)

    def delay(self, plan: frozenset[str]) -> int:
        rng, difficulty, scenario = self.rng, self.difficulty, self.scenario
        if scenario == "late_report":
            return rng.randint(*{0: (45, 120), 1: (32, 60), 2: (31, 34), 3: (31, 31)}[difficulty])
        if scenario == "needs_investigation":
            return -1 if difficulty == 3 else -rng.randint(1, 10)
        if "slow_reporting" in plan:
            if difficulty == 3:
                return rng.choice((15, 30, 30))
            return rng.randint(15, 30) if difficulty <= 1 else rng.randint(25, 30)
        if difficulty == 3 and rng.random() < 0.3:
            return 14
        return rng.randint(0, 10 if difficulty == 0 else 14)

    def amount(self, peril: str, policy: PolicyRecord | None, plan: frozenset[str]) -> float:
        rng, difficulty, scenario = self.rng, self.difficulty, self.scenario
        low, high = CLAIM_AMOUNT_RANGES[peril]
        if policy is None or peril not in policy.coverages:
            return round(rng.uniform(low, high), 2)
        limit, _ = policy.limit_for(peril)
        deductible = policy.deductible
        near = "amount_near_limit" in plan
        near_floor = round(0.9 * limit, 2)
        if scenario == "below_deductible":
            share = {0: (0.3, 0.8), 1: (0.5, 0.95), 2: (0.9, 1.0), 3: (1.0, 1.0)}[difficulty]
            return round(deductible * rng.uniform(*share), 2)
        if scenario == "high_value":
            floor = AUTHORITY_LIMIT + deductible
            if difficulty == 3:
                amount = floor + 0.01  # a payout of exactly 25,000.01
            elif difficulty == 2:
                amount = floor + round(rng.uniform(0.01, 100), 2)
            else:
                amount = round(rng.uniform(floor + 5_000, max(floor + 5_000, min(limit, floor + 40_000))), 2)
            if near:
                amount = max(amount, near_floor)
            elif amount >= near_floor:
                raise _Retry
            return round(amount, 2)
        if near:
            if difficulty == 3:
                return rng.choice((near_floor, round(limit, 2)))
            return round(rng.uniform(near_floor, limit * 1.15), 2)
        cap = min(high, near_floor - 0.01)
        if scenario == "approve":
            cap = min(cap, AUTHORITY_LIMIT + deductible)
            floor = deductible + (50 if difficulty == 0 else 1)
            if difficulty == 3 and rng.random() < 0.4:
                edge = rng.choice(
                    (deductible + 0.01, AUTHORITY_LIMIT + deductible)
                )  # payout 0.01 or 25,000.00
                if edge < near_floor:
                    return round(edge, 2)
            if difficulty == 2 and rng.random() < 0.3:
                edge = rng.choice(
                    (deductible + rng.uniform(0.01, 50), AUTHORITY_LIMIT + deductible - rng.uniform(0, 100))
                )
                if edge < near_floor:
                    return round(edge, 2)
            if difficulty >= 1 and rng.random() < 0.1 and limit - deductible <= AUTHORITY_LIMIT:
                return round(limit * rng.uniform(1.2, 1.6), 2)  # above the limit: paid only up to it
            low = max(low, floor)
            if low > cap:
                raise _Retry
            return round(rng.uniform(low, cap), 2)
        return round(rng.uniform(low, max(low, cap)), 2)

    def fields(self) -> dict[str, Any]:
        rng = self.rng
        peril = self.peril()
        policy = self.policy(peril)
        if policy is None and self.scenario != "policy_inactive":
            raise _Retry
        plan = self.signal_plan(peril, policy)
        incident = self.incident(policy, plan)
        report = incident + timedelta(days=self.delay(plan))
        holder = (
            policy.holder if policy is not None else f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        )
        claimant = holder
        if "claimant_not_holder" in plan:
            while claimant == holder:
                claimant = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        if peril == "theft":
            police = "theft_without_police_report" not in plan
        else:
            police = rng.random() < {"collision": 0.6, "vandalism": 0.5, "fire": 0.7, "liability": 0.5}.get(
                peril, 0.1
            )
        if peril in PHOTO_PERILS:
            photos = 0 if "no_photos" in plan else rng.randint(1, 12)
        else:
            photos = rng.randint(0, 4)
        number = policy.number if policy is not None else self._unknown_number()
        description = rng.choice(_DESCRIPTIONS[peril]).format(street=rng.choice(_STREETS))
        fields = {
            "claim_type": peril,
            "amount_claimed": self.amount(peril, policy, plan),
            "incident_date": incident.isoformat(),
            "report_date": report.isoformat(),
            "policy_number": number,
            "police_report": police,
            "photos": photos,
            "description": description,
            "claimant": claimant,
        }
        if fields["amount_claimed"] <= 0:
            raise _Retry
        # The plan is only a plan: keep the draw only if the tools will reveal exactly it (where
        # the fraud score matters to the outcome).
        if (
            policy is not None
            and self.scenario in _SCORED_SCENARIOS
            and frozenset(fraud_facts(fields, self.catalogue.tables)["signals"]) != plan
        ):
            raise _Retry
        return fields

    def _unknown_number(self) -> str:
        while True:
            number = f"AUT-{self.rng.randint(900_000, 999_999)}"
            if number not in self.catalogue.numbers:
                return number


class _Retry(Exception):
    """This draw cannot produce the scenario; draw again."""


def _pick(rng: random.Random, items: Sequence[PolicyRecord]) -> PolicyRecord:
    if not items:
        raise _Retry
    return rng.choice(items)


def _random_date(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, max((end - start).days, 0)))


def _matches(outcome: Outcome, scenario: str) -> bool:
    decision, reason = _TARGETS[scenario]
    if outcome.decision != decision:
        return False
    return reason is None or reason in outcome.arguments.values()


def generate_cases(
    count: int,
    *,
    seed: int,
    difficulty: int = 0,
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
) -> list[CaseData]:
    """``count`` labelled cases at ``difficulty`` (0-3) over ``tables``; deterministic per arguments."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    if count < 0:
        raise ValueError("count must be >= 0")
    rng = random.Random(f"claims-cases:{seed}:{difficulty}")
    catalogue = _Catalogue.build(tables)
    weights = _SCENARIO_WEIGHTS[difficulty]
    cases: list[CaseData] = []
    for position in range(count):
        scenario = rng.choices(SCENARIOS, weights)[0]
        fields, outcome = _draw_case(rng, catalogue, difficulty, scenario)
        cases.append(CaseData(f"CLM-{seed}-{difficulty}-{position:04d}", fields, outcome, difficulty))
    return cases


def _draw_case(
    rng: random.Random, catalogue: _Catalogue, difficulty: int, scenario: str
) -> tuple[dict[str, Any], Outcome]:
    """A case for ``scenario`` labelled by the rule book; small tables (say a handful of policies
    loaded from the database) may make a scenario impossible, and then the others are tried."""
    fields: dict[str, Any] | None = None
    outcome: Outcome | None = None
    for attempt in (scenario, *(other for other in SCENARIOS if other != scenario)):
        for _ in range(_MAX_TRIES):
            try:
                candidate = _Draw(rng, catalogue, difficulty, attempt).fields()
            except _Retry:
                continue
            fields, outcome = candidate, adjudicate(candidate, catalogue.tables)
            if _matches(outcome, attempt):
                return fields, outcome
        if fields is not None and outcome is not None:
            return fields, outcome  # labelled correctly, only not the scenario aimed at
    raise ValueError("could not draw any case from these tables")


def scenario_of(case: CaseData) -> str:
    """The scenario a labelled case's expected outcome belongs to (for reports and tests)."""
    expected = case.expected
    assert expected is not None
    for scenario in SCENARIOS:
        if _matches(expected, scenario):
            return scenario
    raise ValueError(f"unexpected outcome {expected}")
