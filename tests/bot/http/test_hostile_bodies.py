"""Garbage at the HTTP door: the Slack signature is checked on the raw bytes before anything
parses them, and bodies have a size and a JSON-depth limit (DESIGN §11)."""

from __future__ import annotations

import json
import time

import pytest

from bot.http.api import MAX_BODY_BYTES, too_deep
from tests.conftest import Service
from tests.support.signing import signed_headers, slash_body

AUTH = {"Authorization": "Bearer test-api-token"}
DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"just a string"', "application/json"),
        (DEEP.encode(), "application/json"),
        (b"payload=" + DEEP.encode(), "application/x-www-form-urlencoded"),
        (b"", "application/json"),
    ],
)
async def test_unsigned_garbage_is_refused_with_401(
    service: Service, body: bytes, content_type: str
) -> None:
    response = await service.http.post(
        f"{service.url}/slack/events", data=body, headers={"Content-Type": content_type}
    )
    assert response.status == 401
    assert "signature" in (await response.json())["error"]
    assert service.slack.calls == []


async def test_forged_signatures_and_garbage_timestamps_are_refused(service: Service) -> None:
    body = slash_body("/ready", "new 1.0.0", response_url=service.slack.response_url())
    for secret, timestamp in [("not-the-secret", None), ("test-signing-secret", 0)]:
        headers = signed_headers(body, secret=secret, timestamp=timestamp)
        response = await service.http.post(
            f"{service.url}/slack/events", data=body, headers=headers
        )
        assert response.status == 401
    for stamp in ["", "abc", "1e9", "-5", "٣٣٣"]:
        headers = {**signed_headers(body), "X-Slack-Request-Timestamp": stamp}
        response = await service.http.post(
            f"{service.url}/slack/events", data=body, headers=headers
        )
        assert response.status == 401, stamp


@pytest.mark.parametrize("skew", [-301, 301])
async def test_a_signature_outside_five_minutes_either_way_is_refused(
    service: Service, skew: int
) -> None:
    response = await service.command("/ready", "new 1.0.0", timestamp=int(time.time()) + skew)
    assert response.status == 401


async def test_a_signature_within_the_window_is_accepted(service: Service) -> None:
    response = await service.command("/ready", "help", timestamp=int(time.time()) - 240)
    assert response.status == 200


async def test_a_body_that_is_not_utf8_with_a_fresh_timestamp_gets_401(service: Service) -> None:
    body = b"text=\xff\xfe"
    headers = signed_headers("text=")  # a fresh timestamp and a signature of other bytes
    response = await service.http.post(f"{service.url}/slack/events", data=body, headers=headers)
    assert response.status == 401


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
async def test_signed_json_nested_1000_deep_gets_400(service: Service, content_type: str) -> None:
    body = DEEP if content_type == "application/json" else "payload=" + DEEP
    headers = {**signed_headers(body), "Content-Type": content_type}
    response = await service.http.post(f"{service.url}/slack/events", data=body, headers=headers)
    assert response.status == 400
    assert "deeper" in (await response.json())["error"]


async def test_a_huge_body_gets_413_at_slack_and_the_api(service: Service) -> None:
    huge = b"x" * (MAX_BODY_BYTES + 1)
    response = await service.http.post(
        f"{service.url}/slack/events",
        data=huge,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 413
    for path in ["/api/v1/checks", "/api/v1/alerts", "/api/v1/releases"]:
        response = await service.http.post(
            f"{service.url}{path}",
            data=huge,
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert response.status == 413, path
        assert "larger than" in (await response.json())["error"]


@pytest.mark.parametrize("path", ["/api/v1/checks", "/api/v1/alerts", "/api/v1/releases"])
async def test_api_json_nested_1000_deep_gets_400(service: Service, path: str) -> None:
    for body in [DEEP, json.dumps({"release": {"a": json.loads("[" * 40 + "]" * 40)}})]:
        response = await service.http.post(
            f"{service.url}{path}",
            data=body,
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert response.status == 400
        assert "deeper than 32" in (await response.json())["error"]


async def test_api_invalid_utf8_gets_400(service: Service) -> None:
    response = await service.http.post(f"{service.url}/api/v1/checks", data=b"\xff{", headers=AUTH)
    assert response.status == 400
    assert "JSON" in (await response.json())["error"]


def test_depth_ignores_brackets_inside_strings() -> None:
    assert not too_deep(json.dumps({"text": "[" * 100 + '\\"{' * 50}))
    assert not too_deep("[" * 32 + "]" * 32)
    assert too_deep("[" * 33 + "]" * 33)
    assert too_deep('{"a": "x", "b": ' + "{" * 40)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("[1, 2, 3]", "application/json"),
        ('"a string"', "application/json"),
        ("{not json", "application/json"),
        ("payload=%5B1%5D", "application/x-www-form-urlencoded"),
        ("payload=%7Bnot", "application/x-www-form-urlencoded"),
        ("", "application/x-www-form-urlencoded"),
    ],
)
async def test_signed_garbage_is_answered_without_a_server_error(
    service: Service, body: str, content_type: str
) -> None:
    headers = {**signed_headers(body), "Content-Type": content_type}
    response = await service.http.post(f"{service.url}/slack/events", data=body, headers=headers)
    assert response.status < 500
