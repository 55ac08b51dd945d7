"""Full flow over real HTTP: signed Slack requests through Bolt to the commands and back."""

from __future__ import annotations

import time

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.runtime import Runtime
from commands.policy import Policy
from storage.models import AuditEvent, Release
from tests.conftest import DEVELOPER, Service, service_settings, start_service
from tests.support.clock import FakeClock
from tests.support.signing import signed_headers, slash_body
from tests.support.slack import FakeSlack


def releases(service: Service) -> list[str]:
    with Session(service.runtime.engine) as session:
        return [r.version for r in session.exec(select(Release))]


async def test_signed_ready_answers_with_the_checklist_in_the_ack(service: Service) -> None:
    await service.command("/ready", "new 2026.11.27-1")
    response = await service.command("/ready")
    assert response.status == 200
    body = await response.json()
    assert body["response_type"] == "ephemeral"
    assert "Readiness of 2026.11.27-1" in body["text"]
    assert "rotation-documented" in body["text"]
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds[0] == "header"
    assert kinds.count("section") >= 7


async def test_ops_root_command_and_alias_are_the_same_command(service: Service) -> None:
    await service.command("/ops", "ready new 1.0.0")
    via_root = await (await service.command("/ops", "ready 1.0.0")).json()
    via_alias = await (await service.command("/ready", "1.0.0")).json()
    assert via_root["text"] == via_alias["text"]


async def test_forged_signature_gets_401_and_reaches_no_handler(service: Service) -> None:
    response = await service.command("/ready", "new 9.9.9", secret="not-the-secret")
    assert response.status == 401
    assert releases(service) == []
    assert service.slack.calls == []


async def test_stale_signature_gets_401(service: Service) -> None:
    six_minutes_ago = int(time.time()) - 6 * 60
    response = await service.command("/ready", "new 9.9.9", timestamp=six_minutes_ago)
    assert response.status == 401
    assert releases(service) == []


async def test_future_timestamp_beyond_five_minutes_gets_401(service: Service) -> None:
    response = await service.command("/ready", "new 9.9.9", timestamp=int(time.time()) + 400)
    assert response.status == 401
    assert releases(service) == []


async def test_body_altered_after_signing_gets_401(service: Service) -> None:
    body = slash_body("/ready", "new 1.0.0")
    headers = signed_headers(body)
    tampered = body.replace("1.0.0", "6.6.6")
    response = await service.http.post(
        f"{service.url}/slack/events", data=tampered, headers=headers
    )
    assert response.status == 401
    assert releases(service) == []


async def test_missing_signature_headers_get_401(service: Service) -> None:
    response = await service.http.post(
        f"{service.url}/slack/events",
        data=slash_body("/ready", "new 1.0.0"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 401
    assert releases(service) == []


async def test_refused_waive_is_ephemeral_and_audited(service: Service) -> None:
    await service.command("/ready", "new 1.0.0")
    body = await (
        await service.command("/ready", "waive concurrency too busy", user=DEVELOPER)
    ).json()
    assert body["response_type"] == "ephemeral"
    assert "only release-managers may waive a checklist item" in body["text"]
    with Session(service.runtime.engine) as session:
        refused = session.exec(select(AuditEvent).where(AuditEvent.outcome == "refused")).all()
    assert [(e.actor, e.action) for e in refused] == [(DEVELOPER, "ready.waive")]


async def test_announcement_is_delivered_to_the_rollouts_channel(service: Service) -> None:
    await service.command("/ready", "new 1.0.0")
    # The release's checklist message, then the registration as a reply in its thread.
    assert await service.delivery.deliver_due() == 2
    message, reply = service.slack.posts()
    assert message["channel"] == reply["channel"] == "C0ROLLOUTS"
    assert message["text"].startswith("📝 Readiness of *1.0.0*: 0 of 6 items done.")
    assert "thread_ts" not in message
    assert reply["thread_ts"] == "1700000000.000001"  # the fake's ts of the first message
    assert "registered release candidate *1.0.0*" in reply["text"]


async def test_healthz_and_readyz(service: Service) -> None:
    assert (await service.http.get(f"{service.url}/healthz")).status == 200
    # The fixture runs no scheduler, so readiness is honestly refused.
    response = await service.http.get(f"{service.url}/readyz")
    assert response.status == 503
    assert "scheduler is not running" in (await response.json())["problems"]


async def test_socket_mode_without_a_secret_accepts_nothing_over_http(
    slack: FakeSlack, engine: Engine, policy: Policy, clock: FakeClock, sqlite_url: str
) -> None:
    settings = service_settings(
        slack, sqlite_url, slack_signing_secret=None, slack_app_token="xapp-1-test"
    )
    runtime = Runtime(settings=settings, engine=engine, policy=policy, clock=clock)
    runner, socket_mode = await start_service(runtime, slack)
    try:
        # Whatever key a request is signed with, there is no secret to check it against.
        response = await socket_mode.command("/ready", "new 6.6.6", secret="any-guess")
        assert response.status == 401
        assert "SLACK_SIGNING_SECRET" in (await response.json())["error"]
        assert releases(socket_mode) == []
    finally:
        await socket_mode.http.close()
        await runner.cleanup()


def test_typed_text_is_read_as_the_characters_slack_escaped() -> None:
    from bot.slack.commands import typed_text

    assert typed_text("a &lt; b &amp;&amp; c &gt; d") == "a < b && c > d"
    # Markup Slack itself makes from a mention is left as it came.
    assert typed_text("lead <@U0RM1|ana>") == "lead <@U0RM1|ana>"
    assert typed_text("&amp;lt;") == "&lt;"
