"""A Python client for Caseloop's REST API (``/api/v1/``), on httpx.

    from caseloop.client import Caseloop, ValidationFailed

    with Caseloop("https://caseloop.example.com", api_key="cl_…") as caseloop:
        case = caseloop.submit_case(workflow=3, fields={...}, decide="sync")
        print(case.decision.name, case.decision.status)

Every POST carries an ``Idempotency-Key`` (a fresh UUID unless you pass one), and the client
retries connection failures, 429 (after ``Retry-After``) and 502/503/504 with the same key, so a
retried POST never does its work twice. Error answers raise a :class:`CaseloopError` subclass
carrying the API's ``type``, ``detail`` and ``errors``. See docs/api.md.

This module imports nothing from Django: an integration installs httpx and copies it, or installs
the caseloop package.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import httpx

__all__ = [
    "AuthenticationFailed",
    "Case",
    "Caseloop",
    "CaseloopError",
    "ChainHead",
    "Conflict",
    "Decision",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "Review",
    "ServerError",
    "TrainingJob",
    "TrainingMetric",
    "ValidationFailed",
    "VerifyResult",
    "WaitTimeout",
]

MAX_BULK = 1000
MAX_WAIT = 30.0


# --------------------------------------------------------------------------- errors


class CaseloopError(Exception):
    """An error answer of the API: ``status``, ``type`` (e.g. ``not_found``), ``detail``, ``errors``."""

    def __init__(
        self,
        detail: str,
        *,
        status: int = 0,
        type: str = "error",
        errors: Mapping[str, list[str]] | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.type = type
        self.errors: dict[str, list[str]] = dict(errors or {})
        self.response = response

    def __str__(self) -> str:
        return f"{self.status} {self.type}: {self.detail}" if self.status else self.detail


class ValidationFailed(CaseloopError):
    """400: the request was invalid; ``errors`` maps each field path (``cases[3].fields.x``) to messages."""


class AuthenticationFailed(CaseloopError):
    """401: no credential, or an invalid or revoked key."""


class PermissionDenied(CaseloopError):
    """403: the key lacks a scope, or the member's role does not allow it."""


class NotFound(CaseloopError):
    """404: no such object in your organisation (or no such endpoint)."""


class Conflict(CaseloopError):
    """409: the Idempotency-Key was used with a different request."""


class PayloadTooLarge(CaseloopError):
    """413: the body is too large."""


class RateLimited(CaseloopError):
    """429: too many requests for this credential; retry after ``retry_after`` seconds."""

    def __init__(self, detail: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class ServerError(CaseloopError):
    """5xx: the server failed; the request may be retried (with the same Idempotency-Key)."""


class WaitTimeout(CaseloopError, TimeoutError):
    """A wait (for a decision, a training job) ran out of time; ``last`` is the last state seen."""

    def __init__(self, detail: str, *, last: Any = None) -> None:
        super().__init__(detail, type="timeout")
        self.last = last


_BY_STATUS: dict[int, type[CaseloopError]] = {
    400: ValidationFailed,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


def _retry_after(response: httpx.Response, default: float = 1.0) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default


def error_from(response: httpx.Response) -> CaseloopError:
    """The exception for an error answer (the API's error shape, or whatever a proxy sent)."""
    try:
        body = response.json()
        type_, detail, errors = body["type"], body["detail"], body.get("errors") or {}
    except (ValueError, KeyError, TypeError):
        type_, detail, errors = "http_error", response.text[:500] or response.reason_phrase, {}
    common = {"status": response.status_code, "type": type_, "errors": errors, "response": response}
    if response.status_code == 429:
        return RateLimited(detail, retry_after=_retry_after(response), **common)
    if response.status_code >= 500:
        return ServerError(detail, **common)
    return _BY_STATUS.get(response.status_code, CaseloopError)(detail, **common)


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Decision:
    id: int
    case: int
    name: str
    arguments: dict[str, Any]
    status: str
    final: bool
    confidence: float | None
    outcome: dict[str, Any] | None
    explanation: dict[str, Any]
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            id=data["id"],
            case=data["case"],
            name=data["name"],
            arguments=data["arguments"],
            status=data["status"],
            final=data["final"],
            confidence=data["confidence"],
            outcome=data["outcome"],
            explanation=data["explanation"],
            data=dict(data),
        )


@dataclass(frozen=True)
class Case:
    id: int
    workflow: int
    status: str
    split: str
    external_id: str
    fields: dict[str, Any]
    expected: dict[str, Any] | None
    decision: Decision | None
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Case:
        return cls(
            id=data["id"],
            workflow=data["workflow"],
            status=data["status"],
            split=data["split"],
            external_id=data["external_id"],
            fields=data["fields"],
            expected=data["expected"],
            decision=Decision.from_api(data["decision"]) if data.get("decision") else None,
            data=dict(data),
        )


@dataclass(frozen=True)
class Review:
    id: int
    decision: int
    verdict: str
    reviewer: str
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Review:
        return cls(data["id"], data["decision"], data["verdict"], data["reviewer"], dict(data))


@dataclass(frozen=True)
class TrainingJob:
    id: int
    status: str
    progress: float
    update: int
    total_updates: int
    error: str
    result_version: int | None
    data: dict[str, Any] = field(repr=False)

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> TrainingJob:
        return cls(
            id=data["id"],
            status=data["status"],
            progress=data["progress"],
            update=data["update"],
            total_updates=data["total_updates"],
            error=data["error"],
            result_version=data["result_version"],
            data=dict(data),
        )


@dataclass(frozen=True)
class TrainingMetric:
    update: int
    env_steps: int
    values: dict[str, float]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> TrainingMetric:
        return cls(data["update"], data["env_steps"], data["values"])


@dataclass(frozen=True)
class ChainHead:
    """The head of an organisation's audit chain: its last sequence number and hash."""

    organization: str
    sequence: int
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    head: ChainHead | None
    first_break: dict[str, Any] | None


# --------------------------------------------------------------------------- the client


class Caseloop:
    """A session with one Caseloop server, as one API key (or one signed-in person, see :meth:`login`).

    ``max_retries`` bounds the retries of connection failures, 429 and 502/503/504 (each POST keeps
    its Idempotency-Key across them); ``max_retry_wait`` caps a single wait for ``Retry-After``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "caseloop-python-client/1"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> Caseloop:
        """``CASELOOP_URL`` and ``CASELOOP_API_KEY`` from the environment."""
        return cls(os.environ["CASELOOP_URL"], os.environ.get("CASELOOP_API_KEY"), **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Caseloop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def login(self, username: str, password: str) -> None:
        """Sign in as a person (session and CSRF cookie), e.g. a reviewer: reviews are given by
        people, not by API keys. Later unsafe requests send the CSRF token."""
        self._http.headers.pop("Authorization", None)
        self._http.get("/login/")
        token = self._http.cookies.get("csrftoken")
        response = self._http.post(
            "/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token or ""},
            headers={"Referer": f"{self.base_url}/login/"},
        )
        if response.status_code != 302 or "sessionid" not in self._http.cookies:
            raise AuthenticationFailed("Sign-in failed: wrong username or password.", status=401)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one API request (``path`` below ``/api/v1/``, or an absolute URL), retrying what is
        safe to retry; return the 2xx response or raise the error's exception."""
        url = path if path.startswith(("http://", "https://", "/")) else f"/api/v1/{path}"
        headers: dict[str, str] = {}
        if method.upper() == "POST":
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        csrf = self._http.cookies.get("csrftoken")
        if csrf and method.upper() not in ("GET", "HEAD", "OPTIONS"):
            headers["X-CSRFToken"] = csrf
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        read_timeout: Any = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, url, json=json, params=clean, headers=headers, timeout=read_timeout
                )
            except httpx.TransportError:
                if attempt >= self.max_retries:
                    raise
                attempt += 1
                time.sleep(min(self.max_retry_wait, 0.5 * 2**attempt))
                continue
            if response.is_success:
                return response
            retryable = response.status_code in (429, 502, 503, 504)
            if not retryable or attempt >= self.max_retries:
                raise error_from(response)
            attempt += 1
            wait = (
                _retry_after(response, 0.5 * 2**attempt) if response.status_code == 429 else 0.5 * 2**attempt
            )
            time.sleep(min(self.max_retry_wait, wait))

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    def _pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paginated list, page after page."""
        page = self._json("GET", path, params=params)
        while True:
            yield from page["results"]
            if not page["next"]:
                return
            page = self._json("GET", page["next"])

    # ------------------------------------------------------------------ cases and decisions

    def ping(self) -> dict[str, Any]:
        """Check the credential: ``{"ok": true, "organization": "<slug>"}``."""
        return self._json("GET", "ping")

    def workflows(self) -> list[dict[str, Any]]:
        return list(self._pages("workflows"))

    def submit_case(
        self,
        workflow: int,
        fields: Mapping[str, Any],
        *,
        expected: Mapping[str, Any] | None = None,
        split: str = "live",
        external_id: str = "",
        decide: Literal["queue", "sync"] = "queue",
        idempotency_key: str | None = None,
    ) -> Case:
        """Create a case. A live case is decided by the workers (``decide="queue"``), or within the
        request (``decide="sync"``: the returned case carries its decision)."""
        body = {"workflow": workflow, "fields": dict(fields), "split": split, "external_id": external_id}
        if expected is not None:
            body["expected"] = dict(expected)
        data = self._json(
            "POST", "cases", json=body, params={"decide": decide}, idempotency_key=idempotency_key
        )
        return Case.from_api(data)

    def submit_cases(
        self, workflow: int, cases: Sequence[Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> list[Case]:
        """Create up to 1,000 cases at once, all or nothing. Each item is ``{"fields": …}`` with optional
        ``expected``, ``split`` and ``external_id``. On any problem nothing is created and
        :class:`ValidationFailed` names each bad item and field (``cases[3].fields.amount``)."""
        if not 1 <= len(cases) <= MAX_BULK:
            raise ValueError(f"submit 1 to {MAX_BULK} cases at once, not {len(cases)}")
        body = {"workflow": workflow, "cases": [dict(c) for c in cases]}
        data = self._json("POST", "cases/bulk", json=body, idempotency_key=idempotency_key)
        return [Case.from_api(c) for c in data["cases"]]

    def get_case(self, case_id: int, *, wait: float | None = None) -> Case:
        """The case; with ``wait`` (seconds, at most 30) the server answers once a queued case is decided."""
        return Case.from_api(self._json("GET", f"cases/{case_id}", params={"wait": wait}, **_longer(wait)))

    def cases(self, **filters: Any) -> Iterator[Case]:
        """Cases, newest first. Filters: workflow, split, status, source, external_id, created_after,
        created_before."""
        return (Case.from_api(c) for c in self._pages("cases", filters))

    def get_decision(self, decision_id: int, *, wait: float | None = None) -> Decision:
        """The decision; with ``wait`` the server answers once it is final (or after ``wait`` seconds)."""
        data = self._json("GET", f"decisions/{decision_id}", params={"wait": wait}, **_longer(wait))
        return Decision.from_api(data)

    def decisions(self, **filters: Any) -> Iterator[Decision]:
        """Decisions, newest first; filters: status, workflow, case, policy_version."""
        return (Decision.from_api(d) for d in self._pages("decisions", filters))

    def wait_for_decision(self, case_id: int, *, timeout: float = 60.0, final: bool = False) -> Decision:
        """Long-poll until the case has its decision (and, with ``final``, until review is over).
        Raises :class:`WaitTimeout` with the last state after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        case = self.get_case(case_id)
        while case.decision is None:
            left = deadline - time.monotonic()
            if left <= 0 or case.status == "failed":
                raise WaitTimeout(f"case {case_id} is {case.status}, not decided", last=case)
            case = self.get_case(case_id, wait=min(MAX_WAIT, left))
            if case.status == "decided" and case.decision is None:
                raise WaitTimeout(
                    f"case {case_id} was decided without a decision (the policy did not decide)"
                )
        decision = case.decision
        while final and not decision.final:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"decision {decision.id} is still {decision.status}", last=decision)
            decision = self.get_decision(decision.id, wait=min(MAX_WAIT, left))
        return decision

    def execute_decision(self, decision_id: int) -> Decision:
        """Execute an approved or corrected decision (when the workflow waits for your confirmation)."""
        return Decision.from_api(self._json("POST", f"decisions/{decision_id}/execute"))

    # ------------------------------------------------------------------ reviews (signed-in people)

    def claim_review(self, workflow: int | None = None) -> Decision | None:
        """Claim the review queue's next decision; None when the queue is empty."""
        body = {"workflow": workflow} if workflow is not None else {}
        data = self._json("POST", "reviews/claim", json=body)
        return Decision.from_api(data) if data else None

    def submit_verdict(
        self,
        decision_id: int,
        verdict: Literal["approve", "reject", "correct"],
        *,
        corrected_decision: str | None = None,
        corrected_arguments: Mapping[str, Any] | None = None,
        reason: str = "",
        comment: str = "",
        idempotency_key: str | None = None,
    ) -> Review:
        body: dict[str, Any] = {"verdict": verdict, "reason": reason, "comment": comment}
        if corrected_decision is not None:
            body["corrected_decision"] = corrected_decision
        if corrected_arguments is not None:
            body["corrected_arguments"] = dict(corrected_arguments)
        data = self._json(
            "POST", f"decisions/{decision_id}/reviews", json=body, idempotency_key=idempotency_key
        )
        return Review.from_api(data)

    def release_claim(self, decision_id: int) -> Decision:
        return Decision.from_api(self._json("POST", f"decisions/{decision_id}/release"))

    # ------------------------------------------------------------------ policies and training

    def launch_training(
        self,
        workflow: int,
        config: Mapping[str, Any] | None = None,
        *,
        policy_name: str = "PPO policy",
        rubric_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> TrainingJob:
        body: dict[str, Any] = {
            "workflow": workflow,
            "config": dict(config or {}),
            "policy_name": policy_name,
        }
        if rubric_version is not None:
            body["rubric_version"] = rubric_version
        return TrainingJob.from_api(
            self._json("POST", "training-jobs", json=body, idempotency_key=idempotency_key)
        )

    def training_job(self, job_id: int) -> TrainingJob:
        return TrainingJob.from_api(self._json("GET", f"training-jobs/{job_id}"))

    def training_metrics(self, job_id: int, *, after_update: int | None = None) -> list[TrainingMetric]:
        params = {"after_update": after_update, "limit": 500}
        return [TrainingMetric.from_api(m) for m in self._pages(f"training-jobs/{job_id}/metrics", params)]

    def watch_training(
        self, job_id: int, *, interval: float = 2.0, timeout: float | None = None
    ) -> Iterator[tuple[TrainingJob, list[TrainingMetric]]]:
        """Yield (job, metrics new since the last yield) every ``interval`` seconds until the job
        has finished; raises :class:`WaitTimeout` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: int | None = None
        while True:
            job = self.training_job(job_id)
            metrics = self.training_metrics(job_id, after_update=seen)
            if metrics:
                seen = metrics[-1].update
            yield job, metrics
            if job.finished:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"training job {job_id} is still {job.status}", last=job)
            time.sleep(interval)

    def cancel_training(self, job_id: int) -> TrainingJob:
        return TrainingJob.from_api(self._json("POST", f"training-jobs/{job_id}/cancel"))

    def evaluate(
        self, version_id: int, *, split: str = "validation", limit: int | None = None
    ) -> dict[str, Any]:
        """Evaluate a policy version on a split; returns the evaluation report."""
        body: dict[str, Any] = {"split": split}
        if limit is not None:
            body["limit"] = limit
        return self._json("POST", f"policy-versions/{version_id}/evaluations", json=body)

    def promote(
        self, version_id: int, stage: str, *, reason: str = "", force: bool = False
    ) -> dict[str, Any]:
        body = {"stage": stage, "reason": reason, "force": force}
        return self._json("POST", f"policy-versions/{version_id}/promote", json=body)

    # ------------------------------------------------------------------ audit

    def audit_events(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Audit events, newest first; filters: verb, subject_type, subject_id, since, until."""
        return self._pages("audit/events", filters)

    def export_audit(self, destination: str | Path | IO[bytes]) -> ChainHead:
        """Stream the organisation's audit trail (JSONL, ending with its chain head) into
        ``destination`` (a path or a binary file); returns the chain head it ends with."""
        own = isinstance(destination, (str, Path))
        out: IO[bytes] = open(destination, "wb") if isinstance(destination, (str, Path)) else destination  # noqa: SIM115
        last = b""
        try:
            with self._http.stream("GET", "/api/v1/audit/export") as response:
                if not response.is_success:
                    response.read()
                    raise error_from(response)
                for line in response.iter_lines():
                    if line:
                        encoded = line.encode()
                        out.write(encoded + b"\n")
                        last = encoded
        finally:
            if own:
                out.close()
        head = json.loads(last)["chain_head"]
        return ChainHead(head["organization"], head["sequence"], head["hash"])

    def verify_audit(self) -> VerifyResult:
        """Have the server recompute the organisation's hash chain; returns its verified head."""
        data = self._json("GET", "audit/verify")
        head = data["head"]
        return VerifyResult(
            ok=data["ok"],
            checked=data["checked"],
            head=ChainHead(head["organization"], head["sequence"], head["hash"]) if head else None,
            first_break=data["first_break"],
        )


def _longer(wait: float | None) -> dict[str, float]:
    """A long-poll's read timeout must outlast the server's wait."""
    return {} if not wait else {"timeout": wait + 30.0}
