"""Signatures: what Caseloop signs verifies, anything altered does not, old timestamps are refused,
and the standalone verifier printed in docs/webhooks.md agrees with the signer."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path

import pytest

from caseloop.webhooks.signing import compute_signature, parse_signature_header, sign, verify_signature

SECRET = "whsec_test-secret"
BODY = b'{"id":"e1","event":"case.created","data":{"case":{"id":7,"note":"caf\xc3\xa9"}}}'
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body():
    header = sign(SECRET, BODY, timestamp=1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert compute_signature(SECRET, 1_700_000_000, BODY.decode()) == expected  # str and bytes agree


def test_a_fresh_signature_verifies():
    assert verify_signature(SECRET, sign(SECRET, BODY), BODY)


@pytest.mark.parametrize(
    ("secret", "body"),
    [("whsec_other", BODY), (SECRET, BODY.replace(b"7", b"8")), (SECRET, BODY + b" ")],
    ids=["wrong secret", "altered body", "extra byte"],
)
def test_a_wrong_secret_or_altered_body_fails(secret, body):
    assert not verify_signature(secret, sign(SECRET, BODY), body)


def test_timestamps_outside_the_tolerance_are_refused_both_ways():
    now = time.time()
    old = sign(SECRET, BODY, timestamp=int(now) - 301)
    future = sign(SECRET, BODY, timestamp=int(now) + 301)
    assert not verify_signature(SECRET, old, BODY, now=now)
    assert not verify_signature(SECRET, future, BODY, now=now)
    assert verify_signature(SECRET, old, BODY, tolerance=400, now=now)


def test_a_replayed_signature_with_a_new_timestamp_fails():
    t = int(time.time())
    signature = compute_signature(SECRET, t - 1000, BODY)
    assert not verify_signature(SECRET, f"t={t},v1={signature}", BODY)


@pytest.mark.parametrize(
    "header", ["", "garbage", "t=abc,v1=00", "v1=" + "0" * 64, "t=1700000000", "t=1700000000,v1="]
)
def test_malformed_headers_fail(header):
    assert not verify_signature(SECRET, header, BODY, now=1_700_000_000)


def test_any_of_several_v1_signatures_may_match():
    t = int(time.time())
    good = compute_signature(SECRET, t, BODY)
    assert verify_signature(SECRET, f"t={t},v1={'0' * 64},v1={good}", BODY)
    assert parse_signature_header(f"t={t}, v1=a, v0=b, v1=c") == (t, ["a", "c"])


# --------------------------------------------------------------------------- the documented snippet


def _documented_verifier():
    text = DOCS.read_text()
    match = re.search(
        r"<!-- verify-snippet:start -->\s*```python\n(.*?)```\s*<!-- verify-snippet:end -->", text, re.S
    )
    assert match, "docs/webhooks.md lost its verification snippet markers"
    namespace: dict = {}
    exec(compile(match.group(1), str(DOCS), "exec"), namespace)  # the receiver's code, as printed
    return namespace["verify_caseloop_signature"]


def test_the_documented_snippet_accepts_what_caseloop_signs():
    verify = _documented_verifier()
    assert verify(SECRET, sign(SECRET, BODY), BODY)


def test_the_documented_snippet_refuses_what_the_signer_would_not_have_produced():
    verify = _documented_verifier()
    header = sign(SECRET, BODY)
    assert not verify("whsec_other", header, BODY)
    assert not verify(SECRET, header, BODY.replace(b"case", b"cash"))
    assert not verify(SECRET, sign(SECRET, BODY, timestamp=int(time.time()) - 3600), BODY)
    assert not verify(SECRET, "t=nope,v1=00", BODY)
    assert not verify(SECRET, "", BODY)


def test_the_documented_snippet_and_verify_signature_agree_on_many_inputs():
    verify = _documented_verifier()
    now = int(time.time())
    cases = []
    for offset in (0, -299, 299, -301, 301, -5000):
        for body in (BODY, b"", b"{}", BODY[:-1]):
            cases.append((sign(SECRET, BODY, timestamp=now + offset), body))
    for header, body in cases:
        assert verify(SECRET, header, body) == verify_signature(SECRET, header, body), header
