"""What wavegate does about a wave's verdict: pause, pause blind, ask a person, offer Promote,
auto-promote, roll back by itself only when told to (DESIGN §4), on short test waves."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from commands.core import Context
from commands.policy import Policy
from commands.wave.rules.pause import pause_running_rollouts, resume_rollout
from commands.wave.rules.reactions import daily_digest, due_polls
from storage.models import PauseKind
from tests.conftest import run
from tests.support.clock import FakeClock
from tests.support.waves import (
    audit_trail,
    demo,
    local_actuator,
    observe,
    outbox,
    poll_once,
    rollout,
    small_policy,
    start,
    thread_posts,
)


@pytest.fixture
def policy() -> Policy:
    return small_policy(
        '{id: fatal_errors, source: demo, failure: "> 10", interval: 1s, critical: true}'
    )


def buttons_of(ctx: Context, rollout_id: int | None) -> list[str]:
    names = []
    for post in outbox(ctx.session):
        if post.thread_key == f"rollout:{rollout_id}" and post.blocks:
            for block in json.loads(post.blocks):
                names += [e["action_id"] for e in block.get("elements", []) if "action_id" in e]
    return names


async def test_a_failed_metric_pauses_at_once_and_says_why(ctx: Context) -> None:
    actuator = local_actuator(ctx)
    await start(ctx, "1.0")
    demo(ctx).drift("latency_ms", 3100.0)
    await observe(ctx, "1.0", 1)
    assert rollout(ctx, "1.0").state == "running"  # failure_limit 1: one failure is allowed
    await observe(ctx, "1.0", 1)
    current = rollout(ctx, "1.0")
    assert (current.state, current.pause_kind, current.verdict) == ("paused", "failed", "failed")
    assert "latency_ms: 2 failed polls (limit 1): 3100 breaks > 2500" in (
        current.paused_reason or ""
    )
    why = thread_posts(ctx.session, current.id)[-1]
    assert "paused at wave 1 (staging) by wavegate — a metric failed" in why
    assert "/incident declare" in why
    assert buttons_of(ctx, current.id)[-2:] == ["wave.rollback.request", "wave.resume"]
    assert [a.action for a in actuator.sent] == ["start", "pause"]
    await observe(ctx, "1.0", 5)
    assert rollout(ctx, "1.0").state == "paused"
    assert "rollback" not in [a.action for a in actuator.sent]


async def test_a_budget_drift_pauses_as_budget(ctx: Context) -> None:
    await start(ctx, "1.0")
    demo(ctx).drift("cost", 0.2)
    await observe(ctx, "1.0", 1)
    current = rollout(ctx, "1.0")
    assert (current.state, current.pause_kind) == ("paused", "budget")
    assert "0.2 breaks <= 0.12" in (current.paused_reason or "")


async def test_errors_pause_as_blind_and_never_roll_back(ctx: Context) -> None:
    actuator = local_actuator(ctx)
    await start(ctx, "1.0")
    demo(ctx).drift("latency_ms", "error")
    await observe(ctx, "1.0", 2)
    assert rollout(ctx, "1.0").state == "running"  # 2 errors in a row: at the limit
    await observe(ctx, "1.0", 1)
    current = rollout(ctx, "1.0")
    assert (current.state, current.pause_kind) == ("paused", PauseKind.blind)
    assert "metrics unavailable: 3 errors in a row (limit 2)" in (current.paused_reason or "")
    assert (
        "Nothing is rolled back because metrics are unavailable"
        in thread_posts(
            ctx.session,
            current.id,
        )[-1]
    )
    demo(ctx).drift("latency_ms", None)
    await observe(ctx, "1.0", 10)
    current = rollout(ctx, "1.0")
    assert (current.state, current.pause_kind) == ("paused", "blind")  # never resumes by itself
    assert [a.action for a in actuator.sent] == ["start", "pause"]


async def test_errors_are_retried_sooner_than_the_interval(ctx: Context, clock: FakeClock) -> None:
    ctx.policy = small_policy().model_copy(
        update={
            "metrics": [
                m.model_copy(update={"interval": timedelta(minutes=1)})
                for m in small_policy().metrics
            ]
        }
    )
    await start(ctx, "1.0")
    demo(ctx).drift("latency_ms", "error")
    await poll_once(ctx, "1.0")
    clock.advance(seconds=1)  # error_retry is 1s; the interval is now 1m
    due = [d.metric.id for d in due_polls(ctx, rollout(ctx, "1.0"))]
    assert due == ["latency_ms"]


async def test_inconclusive_pauses_for_a_person(ctx: Context) -> None:
    await start(ctx, "1.0")
    demo(ctx).drift("success_rate", "empty")
    await observe(ctx, "1.0", 1)
    current = rollout(ctx, "1.0")
    assert (current.state, current.pause_kind) == ("paused", "inconclusive")
    text = thread_posts(ctx.session, current.id)[-1]
    assert "promote anyway with `/wave promote 1.0 --force REASON`" in text
    assert buttons_of(ctx, current.id)[-2:] == ["wave.resume", "wave.rollback.request"]


async def test_a_successful_wave_offers_promote_to_its_approvers_once(ctx: Context) -> None:
    await start(ctx, "1.0")
    await observe(ctx, "1.0", 3)
    current = rollout(ctx, "1.0")
    assert (current.state, current.wave_index, current.verdict) == ("running", 0, "successful")
    ready = [t for t in thread_posts(ctx.session, current.id) if "is ready" in t]
    assert len(ready) == 1
    assert "<@U0RM1>: promote to go to wave 2 (free-10)" in ready[0]
    assert buttons_of(ctx, current.id).count("wave.promote") == 1
    await observe(ctx, "1.0", 5)
    again = [t for t in thread_posts(ctx.session, current.id) if "is ready" in t]
    assert len(again) == 1
    assert rollout(ctx, "1.0").wave_index == 0  # nobody pressed


async def test_an_auto_promote_wave_is_promoted_by_wavegate(ctx: Context) -> None:
    await start(ctx, "1.0")
    await run(ctx, "/wave promote --force skip staging")
    assert rollout(ctx, "1.0").wave_index == 1  # free-10 has auto_promote
    await observe(ctx, "1.0", 3)
    current = rollout(ctx, "1.0")
    assert current.wave_index == 2
    promoted = [e for e in audit_trail(ctx.session, "wave.promote") if e.actor == "wavegate"]
    assert len(promoted) == 1
    assert "wave 2 (free-10) → wave 3 (pro)" in (promoted[0].detail or "")


async def test_auto_promote_is_held_by_an_open_incident(ctx: Context) -> None:
    from tests.commands.wave.test_wave_commands import open_incident

    await start(ctx, "1.0")
    await run(ctx, "/wave promote --force skip staging")
    open_incident(ctx, severity=2)
    await observe(ctx, "1.0", 3)
    current = rollout(ctx, "1.0")
    assert current.wave_index == 1
    ready = [t for t in thread_posts(ctx.session, current.id) if "is ready" in t]
    assert "Auto-promote is held: cannot promote 1.0 from wave 2 (free-10): incident #" in ready[0]


async def test_a_critical_metric_rolls_back_by_itself(ctx: Context) -> None:
    actuator = local_actuator(ctx)
    await start(ctx, "1.0")
    demo(ctx).drift("fatal_errors", 50.0)
    await observe(ctx, "1.0", 1)
    current = rollout(ctx, "1.0")
    assert current.state == "rolled_back"
    assert actuator.sent[-1].action == "rollback"
    assert actuator.sent[-1].target is None
    (event,) = audit_trail(ctx.session, "rollback")
    assert event.actor == "wavegate"
    assert "automatic rollback (critical metric fatal_errors)" in (event.reason or "")


async def test_a_wave_with_auto_rollback_rolls_back_on_failure(ctx: Context) -> None:
    await start(ctx, "1.0", "risky")
    demo(ctx).drift("success_rate", 0.5)
    await observe(ctx, "1.0", 1)
    assert rollout(ctx, "1.0").state == "rolled_back"
    (event,) = audit_trail(ctx.session, "rollback")
    assert "automatic rollback (auto_rollback)" in (event.reason or "")


async def test_a_dry_run_metric_never_pauses(ctx: Context) -> None:
    await start(ctx, "1.0")
    demo(ctx).drift("shadow", 0.9)
    await observe(ctx, "1.0", 3)
    current = rollout(ctx, "1.0")
    assert (current.state, current.verdict) == ("running", "successful")


async def test_pause_running_rollouts_pauses_every_running_one(ctx: Context) -> None:
    await start(ctx, "1.0")
    await start(ctx, "2.0")
    await start(ctx, "3.0")
    await run(ctx, "/wave pause 3.0 by hand")
    paused = (
        await pause_running_rollouts(
            ctx, kind=PauseKind.incident, reason="incident #7: provider outage", actor="U0IC1"
        )
    ).paused
    ctx.session.commit()
    assert sorted(r.id for r in paused) == sorted(  # type: ignore[type-var]
        [rollout(ctx, "1.0").id, rollout(ctx, "2.0").id]
    )
    assert rollout(ctx, "1.0").pause_kind == "incident"
    assert rollout(ctx, "3.0").pause_kind == "manual"
    await observe(ctx, "1.0", 10)
    assert rollout(ctx, "1.0").state == "paused"  # an incident pause never lifts by itself
    resumed = await resume_rollout(ctx, rollout(ctx, "1.0"), actor="U0IC1")
    ctx.session.commit()
    assert (resumed.state, resumed.pause_kind) == ("running", None)


async def test_the_daily_digest_is_posted_once_a_day(ctx: Context, clock: FakeClock) -> None:
    await start(ctx, "1.0")
    assert daily_digest(ctx) is True
    assert daily_digest(ctx) is False
    ctx.session.commit()
    digests = [p.text for p in outbox(ctx.session) if p.text.startswith("📋")]
    assert len(digests) == 1
    assert "1 active" in digests[0]
    assert "*1.0*" in digests[0]
    clock.advance(days=1)
    assert daily_digest(ctx) is True
