"""Factories for test data, in one place. Each builds through the services, as the product does."""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model

from caseloop.accounts.models import Membership, Organization, Role
from caseloop.accounts.permissions import Actor
from caseloop.accounts.services import organization_create

_counter = itertools.count(1)


def make_organization(name: str | None = None) -> Organization:
    n = next(_counter)
    return organization_create(
        name=name or f"Org {n}", slug=f"org-{n}-{(name or '').lower().replace(' ', '-')}"
    )


def make_member(organization: Organization, role: str = Role.ADMIN, username: str | None = None):
    user = get_user_model().objects.create_user(
        username=username or f"{role}-{next(_counter)}", password="correct horse battery staple"
    )
    Membership.objects.create(user=user, organization=organization, role=role)
    return user


def make_actor(organization: Organization | None = None, role: str = Role.ADMIN) -> Actor:
    organization = organization or make_organization()
    user = make_member(organization, role)
    return Actor(organization=organization, user=user, role=role)


def make_claims_workflow(
    actor: Actor, *, cases: int = 0, seed: int = 3, production_stage: str | None = "supervised"
):
    """The claims pack as an organisation would set it up: workflow, reference tables, default rubric,
    optionally generated cases, and the expert rules policy in ``production_stage``."""
    from training.models import PolicyKind
    from training.services import policy_create, policy_version_create, policy_version_promote
    from workflows.packs import get_pack
    from workflows.services import case_generate, reference_table_set, rubric_create, workflow_create

    pack = get_pack("claims")
    workflow = workflow_create(actor=actor, name="Auto claims", spec=pack.spec_dict, pack="claims")
    for name, rows in pack.generate_tables(seed).items():
        reference_table_set(actor=actor, workflow=workflow, name=name, rows=rows)
    rubric_create(actor=actor, workflow=workflow, name="Default", definition=pack.default_rubric_dict)
    if cases:
        case_generate(actor=actor, workflow=workflow, count=cases, seed=seed, difficulty=1)
    policy = policy_create(actor=actor, workflow=workflow, name="Expert rules", kind=PolicyKind.RULES)
    version = policy_version_create(actor=actor, policy=policy, config=pack.rules_dict)
    if production_stage:
        policy_version_promote(actor=actor, version=version, stage=production_stage)
    return workflow, version


def live_case_fields(workflow, *, seed: int = 99, count: int = 1) -> list[dict]:
    """Fields of generated cases for ``workflow``, without expected outcomes, as a live system sends them."""
    from workflows.packs import get_pack

    tables = {t.name: t.rows for t in workflow.tables.all()}
    return [
        c.fields
        for c in get_pack(workflow.pack).generate_cases(count, seed=seed, difficulty=1, tables=tables)
    ]


# --------------------------------------------------------------------------- live decisions and review


def approve_rules(*, confidence: float = 0.99, amount: str = "amount_claimed") -> dict:
    """A rules policy config that runs every claims check and then approves ``amount`` with
    ``confidence``: lets a test choose the decision, its amount and its confidence."""
    return {
        "checks": ["lookup_policy", "check_coverage", "claim_history", "fraud_score", "compute_payout"],
        "rules": [],
        "default": {
            "decision": "approve",
            "arguments": {"amount": amount},
            "explanation": "Paying {amount_claimed} on policy {policy_number}.",
            "confidence": confidence,
        },
    }


def make_rules_version(
    actor: Actor, workflow, *, config: dict, stage: str | None = None, name: str | None = None
):
    """Another rules policy of ``workflow`` with one version, optionally promoted to ``stage``."""
    from training.models import PolicyKind
    from training.services import policy_create, policy_version_create, policy_version_promote

    policy = policy_create(
        actor=actor, workflow=workflow, name=name or f"Rules {next(_counter)}", kind=PolicyKind.RULES
    )
    version = policy_version_create(actor=actor, policy=policy, config=config)
    if stage:
        # Forced: these tests are about routing and review, not about the evaluation gate.
        version = policy_version_promote(
            actor=actor, version=version, stage=stage, force=True, reason="test set-up"
        )
    return version


def decide_live_case(actor: Actor, workflow, fields: dict):
    """Create a live case and decide it as the ``decisions`` worker would; returns its Decision."""
    from workflows.models import Case, CaseStatus
    from workflows.services import case_create, case_decide

    # decide=False: no on-commit task; the test plays the worker itself, synchronously.
    case = case_create(actor=actor, workflow=workflow, fields=fields, decide=False)
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.QUEUED)
    return case_decide(case_id=case.pk)


def claims_fields(workflow, *, amount: float | None = None, seed: int = 99, index: int = 0) -> dict:
    """One live claim's fields; ``amount`` overrides the amount claimed."""
    fields = dict(live_case_fields(workflow, seed=seed, count=index + 1)[index])
    if amount is not None:
        fields["amount_claimed"] = amount
    return fields
