"""Concurrent reviewers on the real PostgreSQL: each thread has its own connection and transaction,
and no item is ever handed to two reviewers or executed twice."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from caseloop.audit.models import AuditEvent
from caseloop.audit.selectors import audit_verify
from workflows.models import Decision, DecisionStatus
from workflows.services import decision_execute, review_claim_next, review_submit

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REVIEWERS = 5
ITEMS = 8


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; return results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:  # reported to the test, not lost in the thread
            results[i] = exc
        finally:
            connection.close()  # each thread's own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a reviewer thread hung"
    return results


def test_concurrent_claims_never_hand_one_item_to_two_reviewers(claims):
    decisions = [claims.decide(amount=1_000 + i) for i in range(ITEMS)]
    reviewers = [claims.member() for _ in range(REVIEWERS)]

    # Everyone claims at the same instant: five different items.
    first = _in_threads(REVIEWERS, lambda i: review_claim_next(actor=reviewers[i]))
    assert not [r for r in first if isinstance(r, Exception)], first
    assert all(r is not None for r in first), "a reviewer got nothing while items were free (no SKIP LOCKED?)"
    assert len({r.pk for r in first}) == REVIEWERS

    # Then each works through the queue: approve what it holds, claim the next, until none is left.
    def drain(i: int) -> list[int]:
        done = []
        decision = Decision.objects.get(pk=first[i].pk)
        while decision is not None:
            review_submit(actor=reviewers[i], decision=decision, verdict="approve")
            done.append(decision.pk)
            decision = review_claim_next(actor=reviewers[i])
        return done

    worked = _in_threads(REVIEWERS, drain)
    assert not [r for r in worked if isinstance(r, Exception)], worked
    handled = Counter(pk for done in worked for pk in done)
    assert handled == Counter({d.pk: 1 for d in decisions})
    assert set(Decision.objects.filter(pk__in=handled).values_list("status", flat=True)) == {
        DecisionStatus.EXECUTED
    }
    claims_audited = Counter(
        AuditEvent.objects.filter(verb="review.claimed").values_list("subject_id", flat=True)
    )
    assert claims_audited == Counter({str(d.pk): 1 for d in decisions})
    assert audit_verify(organization=claims.admin.organization).ok


def test_concurrent_executions_execute_once(claims):
    claims.settings(execute_on_approval=False)
    decision = claims.decide()
    review_submit(actor=claims.admin, decision=decision, verdict="approve")
    results = _in_threads(
        4, lambda i: decision_execute(actor=claims.admin, decision=Decision.objects.get(pk=decision.pk))
    )
    executed = [r for r in results if isinstance(r, Decision)]
    refused = [r for r in results if isinstance(r, ValidationError)]
    assert len(executed) == 1 and len(refused) == 3, results
    assert all(r.messages == [f"decision {decision.pk} is executed; it cannot be executed"] for r in refused)
    assert AuditEvent.objects.filter(verb="decision.executed", subject_id=str(decision.pk)).count() == 1
