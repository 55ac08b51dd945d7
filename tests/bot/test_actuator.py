"""The actuator webhook against a fake deploy system on loopback: signature, payload, retries
with one idempotency key, and a final failure that leaves the rollout where it was."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.actuator import WebhookActuator, build_actuator
from commands.core import Context, Request
from commands.policy import Actuator, Policy
from commands.ports import Actuation, ActuatorFailed
from commands.wave.buttons import press
from storage.models import ReleaseState, Rollout
from storage.releases import get_release
from tests.conftest import MANAGER, run
from tests.support.actuator import SECRET, FakeDeploySystem
from tests.support.waves import (
    audit_trail,
    observe,
    ready_release,
    rollout,
    small_policy,
    start,
    thread_posts,
)


@pytest.fixture
async def deploy() -> AsyncIterator[FakeDeploySystem]:
    fake = await FakeDeploySystem().start()
    yield fake
    await fake.stop()


@pytest.fixture
def policy() -> Policy:
    return small_policy()


def webhook(ctx: Context, deploy: FakeDeploySystem, **config: object) -> WebhookActuator:
    settings = Actuator.model_validate({"url": deploy.url, "retries": 3, **config})
    ctx.policy = ctx.policy.model_copy(update={"actuator": settings})
    actuator = WebhookActuator(settings, SECRET, backoff=0)
    ctx.ports.actuator = actuator
    return actuator


def retry_value(blocks: list[dict[str, object]] | None) -> str:
    for block in blocks or []:
        for element in block.get("elements", []):  # type: ignore[attr-defined]
            if element["action_id"] == "wave.retry":
                return str(element["value"])
    raise AssertionError("no Retry button")


async def test_every_action_is_signed_and_carries_the_documented_fields(
    ctx: Context, deploy: FakeDeploySystem
) -> None:
    webhook(ctx, deploy)
    await run(ctx, "/ready new 0.9")
    await start(ctx, "1.0")
    await run(ctx, "/wave pause checking")
    await run(ctx, "/wave resume")
    await run(ctx, "/wave promote --force fast")
    await run(ctx, "/rollback 1.0 errors up")
    reply = await press(
        Request(command="x", text="", user_id=MANAGER),
        ctx,
        "wave.rollback.confirm",
        json.dumps({"release": "1.0", "reason": "errors up"}),
    )
    assert not reply.error, reply.text
    assert all(r.signature_ok for r in deploy.received)
    assert deploy.actions() == ["start", "pause", "resume", "promote", "rollback"]
    first = deploy.accepted[0]
    assert set(first) == {
        "action",
        "release",
        "wave",
        "tiers",
        "percent",
        "target",
        "actor",
        "reason",
        "idempotency_key",
    }
    assert (first["release"], first["wave"], first["tiers"], first["percent"]) == (
        "1.0",
        "staging",
        ["staging"],
        100,
    )
    assert first["actor"] == MANAGER
    promote = deploy.accepted[3]
    assert (promote["wave"], promote["percent"], promote["reason"]) == ("free-10", 10, "fast")
    rollback = deploy.accepted[4]
    assert (rollback["target"], rollback["reason"]) == (None, "errors up")
    assert len({body["idempotency_key"] for body in deploy.accepted}) == 5
    assert all(r.timestamp.isdigit() for r in deploy.received)


async def test_failures_are_retried_with_the_same_idempotency_key(
    ctx: Context, deploy: FakeDeploySystem
) -> None:
    webhook(ctx, deploy)
    await start(ctx, "1.0")
    await observe(ctx, "1.0", 3)
    deploy.fail(2)
    reply = await run(ctx, "/wave promote")
    assert not reply.error, reply.text
    promotes = [r for r in deploy.received if r.body["action"] == "promote"]
    assert [r.status for r in promotes] == [503, 503, 200]
    assert len({r.body["idempotency_key"] for r in promotes}) == 1
    assert rollout(ctx, "1.0").wave_index == 1


async def test_a_final_failure_leaves_the_rollout_where_it_was_and_offers_retry(
    ctx: Context, deploy: FakeDeploySystem
) -> None:
    webhook(ctx, deploy)
    await start(ctx, "1.0")
    await observe(ctx, "1.0", 3)
    before = rollout(ctx, "1.0")
    deploy.fail(4)
    reply = await run(ctx, "/wave promote")
    assert reply.error
    assert reply.text.startswith(
        "Deploy system unavailable: the deploy system did not confirm promote of 1.0 after "
        "4 attempts: HTTP 503"
    )
    assert "Nothing changed." in reply.text
    after = rollout(ctx, "1.0")
    assert (after.wave_index, after.version, after.state) == (0, before.version, "running")
    (failed,) = [e for e in audit_trail(ctx.session, "wave.promote") if e.outcome == "failed"]
    assert "HTTP 503" in (failed.reason or "")
    assert "did not confirm promote" in thread_posts(ctx.session, after.id)[-1]
    retry = press(
        Request(command="wave.retry", text="", user_id=MANAGER),
        ctx,
        "wave.retry",
        retry_value(reply.blocks),
    )
    assert (await retry).text == "Promoted 1.0 to wave 2 (free-10) — free at 10%."
    promotes = [r.body["idempotency_key"] for r in deploy.received if r.body["action"] == "promote"]
    assert len(promotes) == 5
    assert len(set(promotes)) == 1  # the retry is the same action from the same state


async def test_a_start_that_finally_fails_leaves_a_candidate(
    ctx: Context, deploy: FakeDeploySystem
) -> None:
    webhook(ctx, deploy)
    await ready_release(ctx, "1.0")
    deploy.fail(4, status=500)
    reply = await run(ctx, "/wave start 1.0")
    assert reply.error
    assert "did not confirm start of 1.0 after 4 attempts: HTTP 500" in reply.text
    release = get_release("1.0", session=ctx.session)
    assert release is not None
    assert release.state == ReleaseState.candidate
    assert ctx.session.exec(select(Rollout)).first() is None
    retried = await press(
        Request(command="wave.retry", text="", user_id=MANAGER),
        ctx,
        "wave.retry",
        retry_value(reply.blocks),
    )
    assert retried.text.startswith("Started 1.0 (plan default)")
    assert rollout(ctx, "1.0").state == "running"


async def test_a_stalled_deploy_system_times_out(ctx: Context, deploy: FakeDeploySystem) -> None:
    webhook(ctx, deploy, timeout="0.2s", retries=1)
    deploy.stall_seconds = 0.5
    await ready_release(ctx, "1.0")
    reply = await run(ctx, "/wave start 1.0")
    assert "after 2 attempts: no answer within 0.2s" in reply.text


async def test_a_wrong_secret_is_refused_by_the_deploy_system(deploy: FakeDeploySystem) -> None:
    config = Actuator(url=deploy.url, retries=0)
    actuator = WebhookActuator(config, "not-the-secret", backoff=0)
    with pytest.raises(ActuatorFailed, match="HTTP 401"):
        await actuator.send(Actuation(action="pause", release="1.0", wave="staging"))
    assert [r.signature_ok for r in deploy.received] == [False]


async def test_a_missing_secret_is_named(deploy: FakeDeploySystem, policy: Policy) -> None:
    with_actuator = policy.model_copy(
        update={"actuator": Actuator(url=deploy.url, secret_env="DEPLOY_HOOK_SECRET")}
    )
    actuator = build_actuator(with_actuator, env={})
    assert actuator is not None
    with pytest.raises(ActuatorFailed, match="environment variable DEPLOY_HOOK_SECRET"):
        await actuator.send(Actuation(action="pause", release="1.0", wave="staging"))
    assert deploy.received == []
    assert build_actuator(policy) is None  # no actuator in the policy: local success


async def test_an_automatic_pause_the_deploy_system_refuses_is_retried_by_the_next_poll(
    ctx: Context, deploy: FakeDeploySystem, clock: object
) -> None:
    from tests.support.waves import demo

    webhook(ctx, deploy, retries=0)
    await start(ctx, "1.0")
    demo(ctx).drift("cost", 0.5)
    deploy.fail(3)
    await observe(ctx, "1.0", 3)
    current = rollout(ctx, "1.0")
    assert current.state == "running"  # where it was: the deploy system did not pause
    notes = [t for t in thread_posts(ctx.session, current.id) if "did not confirm pause" in t]
    assert len(notes) == 1  # said once, not at every poll
    ctx.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
    await observe(ctx, "1.0", 1)
    assert rollout(ctx, "1.0").pause_kind == "budget"


async def test_pausing_every_rollout_skips_the_one_the_deploy_system_refused(
    ctx: Context, deploy: FakeDeploySystem
) -> None:
    from commands.wave.rules.pause import pause_running_rollouts
    from storage.models import PauseKind

    webhook(ctx, deploy, retries=0)
    await start(ctx, "1.0")
    await start(ctx, "2.0")
    deploy.fail(1)
    paused = (
        await pause_running_rollouts(
            ctx, kind=PauseKind.incident, reason="incident #1", actor="U0IC1"
        )
    ).paused
    ctx.session.commit()
    assert [r.id for r in paused] == [rollout(ctx, "2.0").id]
    assert (rollout(ctx, "1.0").state, rollout(ctx, "2.0").state) == ("running", "paused")
    first = rollout(ctx, "1.0")
    assert "did not confirm pause of 1.0" in thread_posts(ctx.session, first.id)[-1]
