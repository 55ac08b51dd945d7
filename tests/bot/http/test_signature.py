"""The signature check of `POST /slack/events` is Slack's (slack_sdk's SignatureVerifier agrees
with it on every case), done with hmac on the raw bytes."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from aiohttp.test_utils import make_mocked_request
from slack_sdk.signature import SignatureVerifier

from bot.http.slack_events import signed_by_slack

SECRET = "test-signing-secret"


def headers(body: bytes, *, at: int, secret: str = SECRET) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(at), body=body)
    return {"X-Slack-Request-Timestamp": str(at), "X-Slack-Signature": signature or ""}


NOW = int(time.time())
CASES = [
    ("another body signed", b"command=%2Fwave&text=status", headers(b"text=x", at=NOW), False),
    ("signed", b"a=1", headers(b"a=1", at=NOW), True),
    ("4 minutes old", b"a=1", headers(b"a=1", at=NOW - 240), True),
    ("6 minutes old", b"a=1", headers(b"a=1", at=NOW - 360), False),
    ("6 minutes ahead", b"a=1", headers(b"a=1", at=NOW + 360), False),
    ("another secret", b"a=1", headers(b"a=1", at=NOW, secret="other"), False),
    ("no signature", b"a=1", {"X-Slack-Request-Timestamp": str(NOW)}, False),
    (
        "not v0",
        b"a=1",
        {"X-Slack-Request-Timestamp": str(NOW), "X-Slack-Signature": "v1=ab"},
        False,
    ),
    (
        "timestamp not digits",
        b"a=1",
        {**headers(b"a=1", at=NOW), "X-Slack-Request-Timestamp": "1e9"},
        False,
    ),
    ("utf-8 text", "text=café".encode(), headers("text=café".encode(), at=NOW), True),
]


@pytest.mark.parametrize(
    ("body", "sent", "valid"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_check_is_slacks(body: bytes, sent: dict[str, str], valid: bool) -> None:
    request = make_mocked_request("POST", "/slack/events", headers=sent)
    assert signed_by_slack(SECRET, body, request) is valid
    timestamp = sent.get("X-Slack-Request-Timestamp", "")
    if timestamp.isdigit():
        verifier = SignatureVerifier(SECRET)
        assert verifier.is_valid(body, timestamp, sent.get("X-Slack-Signature")) is valid


def test_bytes_that_are_not_utf8_are_refused_even_when_the_hmac_matches() -> None:
    body = b"text=\xff\xfe"
    mac = hmac.new(SECRET.encode(), b"v0:%d:%s" % (NOW, body), hashlib.sha256).hexdigest()
    sent = {"X-Slack-Request-Timestamp": str(NOW), "X-Slack-Signature": f"v0={mac}"}
    assert not signed_by_slack(SECRET, body, make_mocked_request("POST", "/", headers=sent))
