"""Full flow over real HTTP: signed slash commands and button presses through Bolt, the status
message posted and updated in place in the fake Slack, and GET /api/v1/rollouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.actuator import WebhookActuator
from bot.jobs.waves import poll_cycle
from commands.core import Context
from commands.policy import Actuator, Policy
from storage.models import AuditEvent
from tests.conftest import DEVELOPER, MANAGER, Service
from tests.support.actuator import SECRET, FakeDeploySystem
from tests.support.clock import FakeClock
from tests.support.signing import block_action, interaction_body
from tests.support.waves import ready_release, small_policy

API = {"Authorization": "Bearer test-api-token"}


@pytest.fixture
def policy() -> Policy:
    return small_policy()


async def responses(service: Service, key: str, count: int = 1) -> list[dict[str, Any]]:
    """What was sent to `response_url` `key`: replies that come after the ack (lazy listeners)."""
    for _ in range(500):
        found = service.slack.responses_to(key)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"no response on {key}: {service.slack.responses}")


async def slash(service: Service, text: str, *, user: str = MANAGER) -> dict[str, Any]:
    """A signed `/wave …` (or `/rollback …`); the ack answer, or the respond() one after it."""
    command, _, rest = text.partition(" ")
    before = len(service.slack.responses_to("1"))
    response = await service.command(command, rest, user=user)
    assert response.status == 200
    body = await response.text()
    if body:
        return dict(json.loads(body))
    return (await responses(service, "1", before + 1))[-1]


async def click(
    service: Service, action_id: str, value: dict[str, Any], *, user: str = MANAGER, key: str
) -> dict[str, Any]:
    payload = block_action(
        action_id, json.dumps(value), user_id=user, response_url=service.slack.response_url(key)
    )
    response = await service.post_signed(interaction_body(payload))
    assert response.status == 200
    return (await responses(service, key))[-1]


async def prepared(service: Service, version: str = "1.0") -> None:
    with Session(service.runtime.engine, expire_on_commit=False) as session:
        ctx = Context(session=session, policy=service.runtime.policy, clock=service.runtime.clock)
        await ready_release(ctx, version)
    await service.delivery.deliver_due()  # the checklist's own announcements
    service.slack.calls.clear()


async def observe(service: Service, seconds: int) -> None:
    """Let time pass on the fake clock, running the real poll job each second."""
    clock = service.runtime.clock
    assert isinstance(clock, FakeClock)
    for _ in range(seconds):
        clock.advance(seconds=1)
        await poll_cycle(service.runtime)


async def test_start_and_promote_over_signed_http_update_one_status_message(
    service: Service,
) -> None:
    await prepared(service)
    started = await slash(service, "/wave start 1.0")
    assert started["response_type"] == "ephemeral"
    assert started["text"].startswith("Started 1.0 (plan default)")
    await service.delivery.deliver_due()
    status, event = service.slack.posts()
    assert status["channel"] == "C0ROLLOUTS"
    assert "wave 1 (staging) of 3" in status["text"]
    # No Promote before the window passed: the buttons follow the gate.
    assert [e["action_id"] for e in status["blocks"][-1]["elements"]] == [
        "wave.pause",
        "wave.rollback.request",
    ]
    assert all("confirm" in e for e in status["blocks"][-1]["elements"])
    status_ts = service.slack.calls_to("chat.postMessage")[0]
    assert event["thread_ts"] is not None
    assert "started *1.0*" in event["text"]

    await observe(service, 3)
    await service.delivery.deliver_due()
    ready = service.slack.calls_to("chat.update")[-1].args["blocks"]
    assert [e["action_id"] for e in ready[-1]["elements"]] == [
        "wave.promote",
        "wave.pause",
        "wave.rollback.request",
    ]
    promoted = await slash(service, "/wave promote")
    assert promoted["text"] == "Promoted 1.0 to wave 2 (free-10) — free at 10%."
    await service.delivery.deliver_due()
    updates = service.slack.calls_to("chat.update")
    assert updates, "the status message is updated in place"
    assert {u.args["channel"] for u in updates} == {"C0ROLLOUTS"}
    assert "wave 2 (free-10) of 3" in updates[-1].args["text"]
    threaded = [p for p in service.slack.posts() if p.get("thread_ts")]
    assert any("promoted *1.0* to wave 2 (free-10)" in p["text"] for p in threaded)
    assert any("is ready" in p["text"] for p in threaded)
    assert len([p for p in service.slack.posts() if not p.get("thread_ts")]) == 1
    assert status_ts.args["channel"] == "C0ROLLOUTS"


async def test_a_refused_promote_over_http_is_ephemeral_and_audited(service: Service) -> None:
    await prepared(service)
    await slash(service, "/wave start 1.0")
    reply = await slash(service, "/wave promote", user=DEVELOPER)
    assert reply["response_type"] == "ephemeral"
    assert "only release-managers may promote a wave" in reply["text"]
    with Session(service.runtime.engine) as session:
        refused = session.exec(select(AuditEvent).where(AuditEvent.outcome == "refused")).all()
    assert [(e.actor, e.action) for e in refused] == [(DEVELOPER, "wave.promote")]


async def test_bad_input_over_http_gets_the_usage_line(service: Service) -> None:
    reply = await slash(service, "/wave start")
    assert reply["response_type"] == "ephemeral"
    assert "missing RELEASE" in reply["text"]
    assert "/wave start RELEASE [PLAN] [--force REASON]" in reply["text"]


async def test_promote_button_then_the_same_stale_button(service: Service) -> None:
    await prepared(service)
    await slash(service, "/wave start 1.0")
    await observe(service, 3)
    value = {"release": "1.0", "wave": 0}
    first = await click(service, "wave.promote", value, key="b1")
    assert first["text"] == "Promoted 1.0 to wave 2 (free-10)."
    assert first["replace_original"] is False
    await service.delivery.deliver_due()
    updates_before = len(service.slack.calls_to("chat.update"))
    stale = await click(service, "wave.promote", value, key="b2")
    assert stale["text"] == (
        "Conflict: 1.0 is already at wave 2 (free-10) (running); nothing changed. The status "
        "message now shows where it is and what can be done."
    )
    assert stale["response_type"] == "ephemeral"
    # The stale press refreshed the status message at Slack: it shows wave 2, and no Promote
    # for wave 1 (wave 2's window has not passed either).
    await service.delivery.deliver_due()
    updates = service.slack.calls_to("chat.update")
    assert len(updates) > updates_before
    latest = updates[-1].args
    assert "wave 2 (free-10) of 3" in latest["text"]
    assert "wave.promote" not in json.dumps(latest["blocks"])


async def test_two_person_rollback_over_http_request_and_confirm_in_the_thread(
    service: Service,
) -> None:
    await prepared(service)
    await slash(service, "/wave start 1.0")
    asked = await slash(service, "/rollback 1.0 error rate up", user=DEVELOPER)
    assert asked["response_type"] == "ephemeral"
    assert asked["text"].startswith("Asked for a rollback of 1.0: the request is in the thread")
    await service.delivery.deliver_due()
    threaded = [p for p in service.slack.posts() if p.get("thread_ts")]
    request = next(p for p in threaded if "asks to roll back *1.0*" in p["text"])
    assert f"<@{DEVELOPER}>" in request["text"]
    (confirm,) = request["blocks"][-1]["elements"]
    assert confirm["action_id"] == "wave.rollback.confirm"
    # The requester lacks `rollback`: they cannot confirm their own request.
    own = await click(
        service, "wave.rollback.confirm", json.loads(confirm["value"]), user=DEVELOPER, key="t1"
    )
    assert "may confirm a rollback" in own["text"]
    done = await click(service, "wave.rollback.confirm", json.loads(confirm["value"]), key="t2")
    assert done["text"].startswith("Rolled back 1.0")
    await service.delivery.deliver_due()
    threaded = [p for p in service.slack.posts() if p.get("thread_ts")]
    assert any("rolled back *1.0*" in p["text"] for p in threaded)
    assert len({p["thread_ts"] for p in threaded}) == 1  # one thread: the rollout's
    with Session(service.runtime.engine) as session:
        kinds = [e.action for e in session.exec(select(AuditEvent)).all() if e.outcome == "ok"]
    assert "rollback.requested" in kinds
    assert "rollback" in kinds


async def test_rollback_request_and_confirm_buttons_over_http(service: Service) -> None:
    await prepared(service)
    await slash(service, "/wave start 1.0")
    asked = await click(
        service, "wave.rollback.request", {"release": "1.0", "reason": "db errors"}, key="r1"
    )
    (button,) = asked["blocks"][-1]["elements"]
    assert button["action_id"] == "wave.rollback.confirm"
    refused = await click(
        service, "wave.rollback.confirm", json.loads(button["value"]), user=DEVELOPER, key="r2"
    )
    assert "may confirm a rollback" in refused["text"]
    done = await click(service, "wave.rollback.confirm", json.loads(button["value"]), key="r3")
    assert done["text"].startswith("Rolled back 1.0 with no last known-good release")
    listing = await service.http.get(f"{service.url}/api/v1/rollouts", headers=API)
    assert (await listing.json())["rollouts"][0]["state"] == "rolled_back"


async def test_rollouts_api_lists_newest_first_with_filters(service: Service) -> None:
    await prepared(service, "1.0")
    await slash(service, "/wave start 1.0")
    clock = service.runtime.clock
    assert isinstance(clock, FakeClock)
    clock.advance(seconds=1)
    await prepared(service, "2.0")
    await slash(service, "/wave start 2.0")
    await slash(service, "/wave pause 2.0 checking a dashboard")
    response = await service.http.get(f"{service.url}/api/v1/rollouts", headers=API)
    assert response.status == 200
    body = await response.json()
    assert [r["release"] for r in body["rollouts"]] == ["2.0", "1.0"]
    assert body["rollouts"][0] == {
        "release": "2.0",
        "plan": "default",
        "state": "paused",
        "wave": "staging",
        "wave_index": 0,
        "wave_started_at": "2026-11-27T10:00:01Z",
        "verdict": "running",
        "pause_kind": "manual",
        "paused_reason": "checking a dashboard",
        "pending_action": None,
    }
    running = await service.http.get(f"{service.url}/api/v1/rollouts?state=running", headers=API)
    assert [r["release"] for r in (await running.json())["rollouts"]] == ["1.0"]
    bad = await service.http.get(f"{service.url}/api/v1/rollouts?state=stuck", headers=API)
    assert bad.status == 400
    assert "unknown state 'stuck'" in (await bad.json())["error"]
    unauthorised = await service.http.get(f"{service.url}/api/v1/rollouts")
    assert unauthorised.status == 401
    assert "error" in await unauthorised.json()


@pytest.fixture
async def deploy() -> AsyncIterator[FakeDeploySystem]:
    fake = await FakeDeploySystem().start()
    yield fake
    await fake.stop()


async def test_actuator_failure_and_retry_over_http(
    service: Service, deploy: FakeDeploySystem
) -> None:
    config = Actuator.model_validate({"url": deploy.url, "retries": 1})
    service.runtime.ports.actuator = WebhookActuator(config, SECRET, backoff=0)
    await prepared(service)
    deploy.fail(2)
    failed = await slash(service, "/wave start 1.0")
    assert "did not confirm start of 1.0 after 2 attempts: HTTP 503" in failed["text"]
    (retry,) = failed["blocks"][-1]["elements"]
    assert retry["action_id"] == "wave.retry"
    again = await click(service, "wave.retry", json.loads(retry["value"]), key="t1")
    assert again["text"].startswith("Started 1.0 (plan default)")
    assert deploy.actions() == ["start"]
    assert all(r.signature_ok for r in deploy.received)


async def test_status_resume_history_and_rollback_over_signed_http(service: Service) -> None:
    await prepared(service)
    await slash(service, "/wave start 1.0")
    status = await slash(service, "/wave")
    assert status["response_type"] == "ephemeral"
    assert status["text"].startswith("🌊 *1.0* · wave 1 (staging) of 3")
    assert status["blocks"][0]["type"] == "header"
    await slash(service, "/wave pause 1.0 smoke test")
    resumed = await slash(service, "/wave resume 1.0")
    assert resumed["text"].startswith("Resumed 1.0: wave 1 (staging) is observed for 3s")
    history = await slash(service, "/wave history 1.0")
    assert "paused — manual at wave 1 (staging) — why: smoke test" in history["text"]
    assert "<@U0RM1> resumed" in history["text"]
    asked = await slash(service, "/rollback 1.0 smoke test over")
    assert "Roll back *1.0*" in asked["text"]
    assert asked["blocks"][-1]["elements"][0]["action_id"] == "wave.rollback.confirm"
    via_root = await slash(service, "/ops wave status 1.0")
    assert via_root["text"].startswith("🌊 *1.0* · wave 1 (staging) of 3")


async def test_pause_and_resume_buttons_and_a_broken_button_value(service: Service) -> None:
    await prepared(service)
    await slash(service, "/wave start 1.0")
    paused = await click(service, "wave.pause", {"release": "1.0"}, user=DEVELOPER, key="p1")
    assert paused["text"] == "Paused 1.0."
    refused = await click(service, "wave.resume", {"release": "1.0"}, user=DEVELOPER, key="p2")
    assert "only release-managers may resume a rollout" in refused["text"]
    resumed = await click(service, "wave.resume", {"release": "1.0"}, key="p3")
    assert resumed["text"] == "Resumed 1.0; its wave is observed afresh."
    payload = block_action(
        "wave.promote", "not json", response_url=service.slack.response_url("p4")
    )
    response = await service.post_signed(interaction_body(payload))
    assert response.status == 200
    (broken,) = await responses(service, "p4")
    assert broken["text"] == "Usage: this button carries no readable value"
    history = await slash(service, "/wave history 1.0")
    assert (
        "<@U0DEV1> paused — manual at wave 1 (staging) — why: paused from the status"
        in (history["text"])
    )
