"""Access matrix: every named route of caseloop.urls x every role x another organisation.

Generated, not listed: the routes come from the URL resolver; what each one requires comes from the
code's own declarations — ``role_required(<permission>)`` on views (read off the decorator),
``permissions = {METHOD: <permission>}`` on API views — and which roles hold a permission from
``PERMISSIONS``. Routes that declare no permission must appear in ``UNDECLARED`` below, so a new
route cannot slip through unclassified, and every route parameter must be resolvable by
``_param_value`` (which object of which organisation it names).

Two organisations are built through the services: "home" and "other". The other organisation's
rows all have ids above every row of home (sequences moved on between the two), so any of its ids
used by a member of home can only ever name the other organisation's object. Then:

1. anonymous and every role lacking a route's permission: GET, POST (and DELETE on the API) answer
   302 to the sign-in page, 401, 403, 404 or 405, and nothing changes (the audit chain heads stay
   where they were);
2. an admin of home (every permission), by session and by API key, on every route whose
   parameters name objects, given the other organisation's objects: 400, 403, 404 or 405 only, and
   the other organisation's audit chain does not move;
3. every role holding a route's permission: GET is not refused; and no answer to anyone in home ever
   contains the other organisation's marker text.

No answer anywhere is a 5xx.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from caseloop.accounts.models import Role
from caseloop.accounts.permissions import PERMISSIONS, SCOPES, Actor
from caseloop.accounts.services import api_key_create
from caseloop.audit.models import AuditChainHead
from caseloop.webhooks.services import webhook_create
from tests.factories import decide_live_case, live_case_fields, make_member, make_organization
from training.models import EvaluationReport, Policy, PolicyVersion
from training.services.evaluation import policy_evaluate
from training.services.jobs import training_job_launch
from workflows.models import Decision, Rubric, Run, Split
from workflows.services import case_create

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

MARKER = "zeta"  # in the other organisation's names; must never reach home's members
OTHER_IDS_STEP = 1_000_000
ROLES = (Role.ADMIN, Role.EXPERT, Role.REVIEWER, Role.AUDITOR)

# Routes that declare no permission, and what they are open to.
UNDECLARED = {
    "login": "public",
    "logout": "public",
    "admin:login": "public",  # the admin site's own sign-in page (staff only past it)
    "admin:logout": "public",
    "healthz": "public",
    "readyz": "public",
    "metrics": "token",  # METRICS_TOKEN (set below): nobody without it
    "api-schema": "public",
    "api-docs": "public",
    "api-redoc": "public",
    "api_v1:ping": "member",
    "home": "member",
    "organization-switch": "member",
}
# Route parameters naming an object of the organisation: kind of object per parameter name; ``pk``
# goes by the first word of the route's name.
OBJECT_PARAMS = {
    "workflow_id": "workflow",
    "rubric_id": "rubric",
    "case_id": "case",
    "decision_id": "decision",
    "policy_id": "policy",
    "version_id": "policy_version",
    "job_id": "job",
    "report_id": "report",
    "webhook_id": "webhook",
    "key_id": "api_key",
    "user_id": "member",
}
PK_KINDS = {
    "workflow": "workflow",
    "reference": "workflow",
    "rubric": "workflow",
    "case": "case",
    "run": "run",
    "decision": "decision",
}
# Parameters that are not ids: numbered within their parent, or names.
PLAIN_PARAMS = {"number": "1", "sequence": "1", "name": "policies"}
DENIED = {401, 403, 404, 405}


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    name: str  # with its namespace, e.g. "admin:index"
    pattern: str  # the full route, e.g. "workflows/<int:pk>/"
    callback: Callable

    @property
    def params(self) -> list[str]:
        return [a or b for a, b in re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", self.pattern)]

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/v1/")

    @property
    def is_admin_site(self) -> bool:
        return self.name.startswith("admin:")

    def url(self, values: dict[str, str]) -> str:
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], self.pattern)
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], path)
        return "/" + path.replace("^", "").replace("$", "")


def _walk(patterns, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern) and entry.name:
            yield Route(f"{namespace}{entry.name}", prefix + str(entry.pattern), entry.callback)


def all_routes() -> list[Route]:
    return list(_walk(get_resolver("caseloop.urls").url_patterns))


def _closure_value(function: Callable, name: str) -> Any:
    """The value of free variable ``name`` in ``function`` or anything it wraps (decorators)."""
    seen = 0
    while function is not None and seen < 20:
        code = getattr(function, "__code__", None)
        if code is not None and name in code.co_freevars:
            return function.__closure__[code.co_freevars.index(name)].cell_contents
        function = getattr(function, "__wrapped__", None)
        seen += 1
    return None


def required(route: Route, method: str) -> str | None:
    """The permission ``method`` on ``route`` requires (None: none declared)."""
    view_class = getattr(route.callback, "view_class", None)
    if view_class is not None and hasattr(view_class, "permissions"):
        return view_class.permissions.get(method)
    return _closure_value(route.callback, "permission")


def methods(route: Route) -> list[str]:
    view_class = getattr(route.callback, "view_class", None)
    if view_class is not None:
        return [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]
    allowed = _closure_value(route.callback, "request_method_list")
    return list(allowed) if allowed else ["GET", "POST"]


# --------------------------------------------------------------------------- the two organisations


@dataclass
class Org:
    organization: Any
    users: dict[str, Any]
    objects: dict[str, int]
    api_key_secret: str


def _build_org(name: str, *, marker: str = "") -> Org:
    from tests.factories import make_claims_workflow

    organization = make_organization(name)
    users = {
        role: make_member(organization, role, username=f"{marker}{role}-{organization.pk}") for role in ROLES
    }
    admin = Actor(organization=organization, user=users[Role.ADMIN], role=Role.ADMIN)
    workflow, rules_version = make_claims_workflow(admin, cases=30)
    for fields in live_case_fields(workflow, count=2):
        decide_live_case(admin, workflow, fields)
    marked = case_create(
        actor=admin, workflow=workflow, fields=live_case_fields(workflow, count=1)[0], split=Split.TEST,
        external_id=f"{marker}case", decide=False,
    )  # fmt: skip
    job = training_job_launch(
        actor=admin, workflow=workflow, config={"ppo": {"total_updates": 5}}, enqueue=False
    )
    report = policy_evaluate(
        actor=admin, version=rules_version, split=Split.VALIDATION, limit=2, with_baselines=False
    )
    webhook, _ = webhook_create(
        actor=admin,
        url=f"http://127.0.0.1:9/{marker}hook",
        events=["decision.finalized"],
        description=f"{marker} hook",
    )
    key, secret = api_key_create(actor=admin, name=f"{marker}key", scopes=list(SCOPES))
    decision = Decision.objects.filter(organization=organization).order_by("id").first()
    objects = {
        "workflow": workflow.pk,
        "rubric": Rubric.objects.get(workflow=workflow).pk,
        "case": marked.pk,
        "run": Run.objects.filter(organization=organization).order_by("id").first().pk,
        "decision": decision.pk,
        "policy": Policy.objects.get(workflow=workflow, kind="rules").pk,
        "policy_version": rules_version.pk,
        "job": job.pk,
        "report": report.pk,
        "webhook": webhook.pk,
        "api_key": key.pk,
        "member": users[Role.REVIEWER].pk,
    }
    assert EvaluationReport.objects.filter(pk=report.pk).exists() and PolicyVersion.objects.filter(
        pk=rules_version.pk
    )
    return Org(organization, users, objects, secret)


@dataclass
class World:
    home: Org
    other: Org
    other_ids_from: int  # every row of the other organisation has an id at least this


@pytest.fixture
def orgs(settings) -> World:
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.METRICS_TOKEN = "matrix-metrics-token"
    settings.API_RATE_LIMIT = "100000/min"
    home = _build_org("Home")
    with connection.cursor() as cursor:  # the other organisation's ids start above everything so far
        cursor.execute("SELECT coalesce(max(last_value), 0) FROM pg_sequences")
        threshold = (cursor.fetchone()[0] // OTHER_IDS_STEP + 1) * OTHER_IDS_STEP
        cursor.execute(
            "SELECT setval(c.oid::regclass, %s, false) FROM pg_class c WHERE c.relkind = 'S'", [threshold]
        )
    other = _build_org(f"{MARKER.title()} Other", marker=MARKER)
    assert max(home.objects.values()) < threshold <= min(other.objects.values())
    return World(home, other, threshold)


def _param_value(route: Route, param: str, org: Org) -> str:
    if param in PLAIN_PARAMS:
        return PLAIN_PARAMS[param]
    if route.is_admin_site:
        return "1"
    kind = OBJECT_PARAMS.get(param) or (PK_KINDS.get(route.name.split("-")[0]) if param == "pk" else None)
    assert kind is not None, f"{route.name}: classify the parameter {param!r} in OBJECT_PARAMS or PK_KINDS"
    return str(org.objects[kind])


def _names_objects(route: Route) -> bool:
    return any(p not in PLAIN_PARAMS for p in route.params) and not route.is_admin_site


def _client(org: Org | None, role: str | None) -> Client:
    client = Client(raise_request_exception=False)
    if org is not None and role is not None:
        client.force_login(org.users[role])
    return client


def _request(client: Client, method: str, url: str, **extra):
    return client.generic(
        method, url, data=b"{}" if method != "GET" else b"", content_type="application/json", **extra
    )


def _body(response) -> str:
    """The whole answer as lower-case text (streamed answers, such as exports, included)."""
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode(errors="replace").lower()


def _heads() -> dict[int, int]:
    return dict(AuditChainHead.objects.values_list("organization_id", "sequence"))


def _is_login_redirect(response, route: Route) -> bool:
    target = "/django-admin/login/" if route.is_admin_site else "/login/"
    return response.status_code == 302 and response["Location"].startswith(target)


# --------------------------------------------------------------------------- the matrix


def test_every_route_is_classified():
    problems = []
    for route in all_routes():
        if route.is_admin_site:
            continue
        declared = [required(route, m) for m in methods(route)]
        if not any(declared) and route.name not in UNDECLARED:
            problems.append(f"{route.name} ({route.pattern}) declares no permission and is not in UNDECLARED")
        for permission in filter(None, declared):
            if permission not in PERMISSIONS:
                problems.append(f"{route.name}: unknown permission {permission!r}")
        if route.is_api and route.name not in UNDECLARED:
            for method, permission in zip(methods(route), declared, strict=True):
                if permission is None:
                    problems.append(
                        f"API {route.name} {method} is open to any member: declare its permission"
                    )
    assert not problems, "\n".join(problems)


def test_nobody_without_the_right_gets_in_or_changes_anything(orgs):
    home = orgs.home
    before = _heads()
    violations = []
    for route in all_routes():
        kind = UNDECLARED.get(route.name)
        if kind == "public" or route.name == "logout":
            continue
        values = {p: _param_value(route, p, home) for p in route.params}
        url = route.url(values)
        for method in ["GET", "POST", *(["DELETE"] if route.is_api else [])]:
            actors: list[tuple[str, Client]] = [("anonymous", _client(None, None))]
            for role in ROLES:
                permission = required(route, method) if method in methods(route) else None
                roles_holding = PERMISSIONS[permission][0] if permission else set(ROLES)
                if route.is_admin_site or kind == "token" or role not in roles_holding:
                    actors.append((role, _client(home, role)))
            for who, client in actors:
                response = _request(client, method, url)
                status = response.status_code
                if status >= 500 or not (status in DENIED or _is_login_redirect(response, route)):
                    violations.append(f"{who} {method} {url} ({route.name}) -> {status}")
    assert _heads() == before, "a refused request changed an audit chain"
    assert not violations, f"{len(violations)} requests got through:\n" + "\n".join(violations[:60])


def test_the_other_organisations_objects_are_out_of_reach(orgs):
    home, other = orgs.home, orgs.other
    before = _heads()
    session = _client(home, Role.ADMIN)
    key = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {home.api_key_secret}")
    violations = []
    checked = 0
    for route in all_routes():
        if not _names_objects(route) or route.name in UNDECLARED:
            continue
        values = {p: _param_value(route, p, other) for p in route.params}
        url = route.url(values)
        clients = [("admin session", session), *([("admin API key", key)] if route.is_api else [])]
        for method in methods(route):
            for who, client in clients:
                response = _request(client, method, url)
                checked += 1
                if response.status_code not in {400, *DENIED} or MARKER in _body(response):
                    violations.append(f"{who} {method} {url} ({route.name}) -> {response.status_code}")
    assert checked > 50
    assert _heads()[other.organization.pk] == before[other.organization.pk], (
        "home changed the other org's chain"
    )
    assert not violations, f"{len(violations)} reached the other organisation:\n" + "\n".join(violations[:60])


def test_members_reach_what_their_role_allows_and_never_see_the_other_organisation(orgs):
    home = orgs.home
    violations = []
    allowed = 0
    for route in all_routes():
        if route.is_admin_site or route.name in ("logout", "metrics") or "GET" not in methods(route):
            continue
        values = {p: _param_value(route, p, home) for p in route.params}
        url = route.url(values)
        permission = required(route, "GET")
        for role in ROLES:
            if permission and role not in PERMISSIONS[permission][0]:
                continue
            response = _request(_client(home, role), "GET", url)
            allowed += 1
            status = response.status_code
            if status >= 500 or status in (401, 403) or _is_login_redirect(response, route):
                violations.append(f"{role} GET {url} ({route.name}) -> {status}")
            if MARKER in _body(response):
                violations.append(f"{role} GET {url} ({route.name}) shows the other organisation's data")
    assert allowed > 100
    assert not violations, "\n".join(violations[:60])
