"""The HTTP API for CI: bearer auth, body validation, releases and checks."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.runtime import Runtime
from commands.policy import Policy
from storage.models import CheckResult, Release
from tests.conftest import Service, service_settings, start_service
from tests.support.clock import FakeClock
from tests.support.slack import FakeSlack

AUTH = {"Authorization": "Bearer test-api-token"}


async def post(service: Service, path: str, body: Any, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    kwargs: dict[str, Any] = {"headers": AUTH if headers is None else headers}
    if isinstance(body, (bytes, str)):
        kwargs["data"] = body
    else:
        kwargs["json"] = body
    return await service.http.post(f"{service.url}{path}", **kwargs)


def count(service: Service, model: type) -> int:
    with Session(service.runtime.engine) as session:
        return len(session.exec(select(model)).all())


async def test_register_release_answers_201_then_409(service: Service) -> None:
    first = await post(service, "/api/v1/releases", {"version": "2026.11.27-1"})
    assert first.status == 201
    assert (await first.json())["state"] == "candidate"
    again = await post(service, "/api/v1/releases", {"version": "2026.11.27-1"})
    assert again.status == 409
    assert (await again.json()) == {"error": "release 2026.11.27-1 is already registered"}


async def test_ci_reports_each_check(service: Service) -> None:
    await post(service, "/api/v1/releases", {"version": "1.0.0"})
    for check in ("lint", "typecheck", "test", "db-migrate"):
        body = {
            "release": "1.0.0",
            "item": "validation",
            "check": check,
            "status": "passed",
            "evidence": f"https://ci/run/7/{check}",
        }
        response = await post(service, "/api/v1/checks", body)
        assert response.status == 201, await response.text()
    reply = await (await service.command("/ready", "1.0.0")).json()
    assert "✅ *validation* — lint, typecheck" in reply["text"]
    assert "lint:passed typecheck:passed test:passed db-migrate:passed" in reply["text"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"release": "9.9.9", "item": "validation", "check": "lint", "status": "passed"},
            404,
            "no release '9.9.9' is registered",
        ),
        (
            {"release": "1.0.0", "item": "nope", "check": "lint", "status": "passed"},
            400,
            "the checklist has no item 'nope'",
        ),
        (
            {"release": "1.0.0", "item": "validation", "check": "fmt", "status": "passed"},
            400,
            "validation has no check 'fmt'",
        ),
        (
            {"release": "1.0.0", "item": "validation", "status": "passed"},
            400,
            "validation is verified by CI: name the check",
        ),
        (
            {"release": "1.0.0", "item": "validation", "check": "lint", "status": "green"},
            400,
            "status: Input should be 'passed' or 'failed'",
        ),
        (
            {
                "release": "1.0.0",
                "item": "validation",
                "check": "lint",
                "status": "passed",
                "extra": 1,
            },
            400,
            "extra: unknown field",
        ),
        (
            {"item": "validation", "check": "lint", "status": "passed"},
            400,
            "release: Field required",
        ),
    ],
)
async def test_bad_check_reports_are_refused_and_change_nothing(
    service: Service, body: dict[str, Any], status: int, message: str
) -> None:
    await post(service, "/api/v1/releases", {"version": "1.0.0"})
    response = await post(service, "/api/v1/checks", body)
    assert response.status == status
    assert (await response.json())["error"].startswith(message)
    assert count(service, CheckResult) == 0


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[1, 2]", b'{"version": 12}', b'{"version": ""}', b"\xff\xfe"]
)
async def test_malformed_bodies_get_400_with_an_error(service: Service, raw: bytes) -> None:
    response = await post(service, "/api/v1/releases", raw)
    assert response.status == 400
    body = await response.json()
    assert set(body) == {"error"}
    assert body["error"]
    assert count(service, Release) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dGVzdA=="},
        {"Authorization": "Bearer"},
    ],
)
async def test_missing_or_wrong_bearer_gets_401(service: Service, headers: dict[str, str]) -> None:
    response = await post(service, "/api/v1/releases", {"version": "1.0.0"}, headers=headers)
    assert response.status == 401
    assert "error" in await response.json()
    assert count(service, Release) == 0


async def test_api_without_a_token_configured_answers_403(
    slack: FakeSlack, engine: Engine, policy: Policy, clock: FakeClock, sqlite_url: str
) -> None:
    settings = service_settings(slack, sqlite_url, wavegate_api_token=None)
    runtime = Runtime(settings=settings, engine=engine, policy=policy, clock=clock)
    runner, service = await start_service(runtime, slack)
    try:
        response = await post(service, "/api/v1/releases", {"version": "1.0.0"})
        assert response.status == 403
        assert "WAVEGATE_API_TOKEN" in (await response.json())["error"]
    finally:
        await service.http.close()
        await runner.cleanup()


async def test_unknown_api_path_is_a_json_404(service: Service) -> None:
    response = await service.http.get(f"{service.url}/api/v1/nothing", headers=AUTH)
    assert response.status == 404
    assert "error" in await response.json()
