"""Claims pack tools: coverage, claim history and fraud scoring over the reference tables.

You are in the claims pack's back office. These functions are the single source of truth for
the facts an adjuster can look up: the pack tools the agent calls (``check_coverage``,
``claim_history``, ``fraud_score``) and the hidden adjudication both call them, so the expected
outcome of a case and what the tools reveal can never disagree.

Tables are treated as immutable: each is indexed once (by identity) and the index reused.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from workflows.engine import ToolCall

__all__ = [
    "FRAUD_SIGNAL_POINTS",
    "PACK_TOOLS",
    "PolicyRecord",
    "check_coverage",
    "claim_history",
    "coverage_facts",
    "days_between",
    "find_policy",
    "fraud_facts",
    "fraud_score",
    "history_facts",
    "payout_for",
]

HISTORY_WINDOW_DAYS = 365
NEW_POLICY_DAYS = 30
SLOW_REPORT_DAYS = 14
NEAR_LIMIT_SHARE = 0.9
PHOTO_PERILS = frozenset({"collision", "vandalism", "weather", "fire"})

# Fraud signals in points out of 100; the score is their capped sum / 100. Integers, so that
# thresholds such as 0.70 are hit exactly, never by a float rounding accident.
FRAUD_SIGNAL_POINTS: dict[str, int] = {
    "frequent_claims": 35,  # 3+ prior claims in the 12 months before the incident
    "repeat_claim": 15,  # exactly 2 prior claims in those 12 months
    "theft_without_police_report": 35,
    "slow_reporting": 15,  # reported more than 14 days after the incident
    "no_photos": 20,  # physical damage claimed without a single photo
    "amount_near_limit": 20,  # claimed at least 90% of the coverage limit
    "new_policy": 20,  # incident within 30 days of the policy's start
    "claimant_not_holder": 15,  # first-party claim filed by someone else
}


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A policies-table row, parsed once."""

    number: str
    holder: str
    status: str
    effective: date
    expiry: date
    coverages: frozenset[str]
    limits: Mapping[str, float]  # per-coverage limits
    overall_limit: float | None
    deductible: float

    def limit_for(self, peril: str) -> tuple[float, str]:
        """Limit for ``peril`` and its basis: a per-coverage limit, else the overall limit."""
        if peril in self.limits:
            return self.limits[peril], "per_coverage"
        if self.overall_limit is not None:
            return self.overall_limit, "overall"
        return 0.0, "none"


@dataclass(frozen=True, slots=True)
class _PastClaim:
    on: date
    claim_type: str
    amount: float
    outcome: str


# --------------------------------------------------------------------------- table indexes

_cache_lock = threading.Lock()
_index_cache: dict[tuple[int, str], tuple[Sequence[Any], dict[str, Any]]] = {}


def _cached(rows: Sequence[Mapping[str, Any]], kind: str, build: Any) -> dict[str, Any]:
    key = (id(rows), kind)
    hit = _index_cache.get(key)
    if hit is not None and hit[0] is rows:
        return hit[1]
    index = build(rows)
    with _cache_lock:
        if len(_index_cache) > 64:
            _index_cache.clear()
        _index_cache[key] = (rows, index)  # holding `rows` keeps its id from being reused
    return index


def _parse_limits(text: Any) -> dict[str, float]:
    limits: dict[str, float] = {}
    for part in str(text or "").split(";"):
        if ":" in part:
            peril, _, amount = part.partition(":")
            limits[peril.strip()] = float(amount)
    return limits


def _build_policies(rows: Sequence[Mapping[str, Any]]) -> dict[str, PolicyRecord]:
    index: dict[str, PolicyRecord] = {}
    for row in rows:
        number = row["policy_number"]
        if number in index:
            continue
        limit = row.get("limit")
        index[number] = PolicyRecord(
            number=number,
            holder=row.get("holder") or "",
            status=row.get("status") or "",
            effective=date.fromisoformat(row["effective_date"]),
            expiry=date.fromisoformat(row["expiry_date"]),
            coverages=frozenset(p.strip() for p in str(row.get("coverages") or "").split(";") if p.strip()),
            limits=_parse_limits(row.get("coverage_limits")),
            overall_limit=float(limit) if limit not in (None, "") else None,
            deductible=float(row.get("deductible") or 0.0),
        )
    return index


def _build_history(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[_PastClaim]]:
    index: dict[str, list[_PastClaim]] = {}
    for row in rows:
        claim = _PastClaim(
            date.fromisoformat(row["date"]), row["claim_type"], float(row["amount"]), row["outcome"]
        )
        index.setdefault(row["policy_number"], []).append(claim)
    for claims in index.values():
        claims.sort(key=lambda claim: claim.on)
    return index


def find_policy(tables: Mapping[str, Sequence[Mapping[str, Any]]], number: Any) -> PolicyRecord | None:
    return _cached(tables["policies"], "policies", _build_policies).get(number)


def _past_claims(tables: Mapping[str, Sequence[Mapping[str, Any]]], number: Any) -> list[_PastClaim]:
    return _cached(tables.get("claim_history", ()), "claim_history", _build_history).get(number, [])


# --------------------------------------------------------------------------- facts


def days_between(start: str, end: str) -> int:
    """Whole days from ISO date ``start`` to ISO date ``end``."""
    return (date.fromisoformat(end) - date.fromisoformat(start)).days


def payout_for(amount: float, limit: float, deductible: float) -> float:
    """What the insurer pays: the claim capped at the limit, minus the deductible, never negative.

    Same formula as the spec's ``compute_payout`` expression tool.
    """
    return round(max(0, min(amount, limit) - deductible), 2)


def coverage_facts(fields: Mapping[str, Any], policy: PolicyRecord | None) -> dict[str, Any]:
    """Was the policy in force on the incident date, is the peril covered, limit, deductible."""
    peril = fields["claim_type"]
    if policy is None:
        return {
            "policy_status": "not found",
            "peril": peril,
            "in_force": False,
            "peril_covered": False,
            "limit": 0.0,
            "deductible": 0.0,
            "limit_basis": "none",
            "effective_date": None,
            "expiry_date": None,
        }
    incident = date.fromisoformat(fields["incident_date"])
    covered = peril in policy.coverages
    limit, basis = policy.limit_for(peril) if covered else (0.0, "none")
    return {
        "policy_status": policy.status,
        "peril": peril,
        # Both ends of the term are inclusive: an incident on the expiry date is covered.
        "in_force": policy.status == "active" and policy.effective <= incident <= policy.expiry,
        "peril_covered": covered,
        "limit": limit,
        "deductible": policy.deductible,
        "limit_basis": basis,
        "effective_date": policy.effective.isoformat(),
        "expiry_date": policy.expiry.isoformat(),
    }


def history_facts(
    fields: Mapping[str, Any], tables: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, Any]:
    """Prior claims on the policy in the 12 months before the incident."""
    incident = date.fromisoformat(fields["incident_date"])
    start = incident - timedelta(days=HISTORY_WINDOW_DAYS)
    recent = [
        claim for claim in _past_claims(tables, fields["policy_number"]) if start <= claim.on < incident
    ]
    return {
        "prior_claims_12m": len(recent),
        "prior_amount_12m": round(sum(claim.amount for claim in recent), 2),
        "prior_denied_12m": sum(1 for claim in recent if claim.outcome == "denied"),
        "last_claim_date": recent[-1].on.isoformat() if recent else None,
    }


def fraud_facts(
    fields: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    prior_claims: int | None = None,
) -> dict[str, Any]:
    """Deterministic fraud score in [0, 1] and the signals behind it.

    ``prior_claims`` may pass the 12-month count already computed by :func:`history_facts`.
    """
    policy = find_policy(tables, fields["policy_number"])
    peril = fields["claim_type"]
    incident = date.fromisoformat(fields["incident_date"])
    signals: list[str] = []
    prior = history_facts(fields, tables)["prior_claims_12m"] if prior_claims is None else prior_claims
    if prior >= 3:
        signals.append("frequent_claims")
    elif prior == 2:
        signals.append("repeat_claim")
    if peril == "theft" and not fields.get("police_report"):
        signals.append("theft_without_police_report")
    if days_between(fields["incident_date"], fields["report_date"]) > SLOW_REPORT_DAYS:
        signals.append("slow_reporting")
    if peril in PHOTO_PERILS and not fields.get("photos"):
        signals.append("no_photos")
    if policy is not None:
        limit, _ = policy.limit_for(peril)
        if (
            peril in policy.coverages
            and limit > 0
            and float(fields["amount_claimed"]) >= NEAR_LIMIT_SHARE * limit
        ):
            signals.append("amount_near_limit")
        if 0 <= (incident - policy.effective).days < NEW_POLICY_DAYS:
            signals.append("new_policy")
        claimant = str(fields.get("claimant") or "").strip().lower()
        if peril != "liability" and claimant and claimant != policy.holder.lower():
            signals.append("claimant_not_holder")
    points = min(100, sum(FRAUD_SIGNAL_POINTS[signal] for signal in signals))
    return {"score": points / 100, "signals": signals}


# --------------------------------------------------------------------------- pack tools


def check_coverage(call: ToolCall) -> dict[str, Any]:
    return coverage_facts(call.case, find_policy(call.tables, call.case["policy_number"]))


def claim_history(call: ToolCall) -> dict[str, Any]:
    return history_facts(call.case, call.tables)


def fraud_score(call: ToolCall) -> dict[str, Any]:
    history = call.revealed.get("claim_history")  # revealed already when the spec requires it
    prior = history.get("prior_claims_12m") if history else None
    return fraud_facts(call.case, call.tables, prior_claims=prior if isinstance(prior, int) else None)


PACK_TOOLS = {
    "check_coverage": check_coverage,
    "claim_history": claim_history,
    "fraud_score": fraud_score,
}
