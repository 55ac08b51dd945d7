"""`/wave` commands on the blueprint policy: every gate refusal, every change, bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from commands.core import Context
from storage.models import Incident, ReleaseState, Rollout, TimelineEntry
from storage.releases import get_release
from tests.conftest import COMMANDER, DEVELOPER, MANAGER, run
from tests.support.clock import FakeClock
from tests.support.waves import (
    audit_trail,
    demo,
    local_actuator,
    observe,
    ready_release,
    rollout,
    start,
    status_posts,
    thread_posts,
)


def open_incident(ctx: Context, severity: int = 2) -> Incident:
    incident = Incident(
        incident_class="provider-outage",
        severity=severity,
        summary="LLM provider down",
        declared_by=COMMANDER,
        declared_at=ctx.now(),
        last_update_at=ctx.now(),
    )
    ctx.session.add(incident)
    ctx.session.commit()
    return incident


# ---------------------------------------------------------------- start


async def test_start_is_refused_while_the_checklist_is_incomplete(ctx: Context) -> None:
    await run(ctx, "/ready new 1.0")
    reply = await run(ctx, "/wave start 1.0")
    assert reply.error
    assert "the readiness checklist of 1.0 is incomplete: observability (pending)" in reply.text
    release = get_release("1.0", session=ctx.session)
    assert release is not None
    assert release.state == ReleaseState.candidate
    assert ctx.session.exec(select(Rollout)).first() is None
    (refusal,) = audit_trail(ctx.session, "wave.start")
    assert refusal.outcome == "refused"
    assert refusal.subject == "release:1.0"


async def test_start_needs_the_permission(ctx: Context) -> None:
    await ready_release(ctx, "1.0")
    reply = await run(ctx, "/wave start 1.0", user=DEVELOPER)
    assert reply.error
    assert "only release-managers may start a rollout" in reply.text
    (refusal,) = audit_trail(ctx.session, "wave.start")
    assert (refusal.actor, refusal.outcome) == (DEVELOPER, "refused")


async def test_start_posts_the_status_message_and_a_thread_event(ctx: Context) -> None:
    actuator = local_actuator(ctx)
    reply = await start(ctx, "1.0")
    assert "Started 1.0 (plan default): wave 1 (staging)" in reply.text
    current = rollout(ctx, "1.0")
    assert (current.state, current.wave_index, current.version) == ("running", 0, 1)
    assert get_release("1.0", session=ctx.session).state == ReleaseState.rolling_out  # type: ignore[union-attr]
    (status,) = status_posts(ctx.session, current.id)
    assert status.channel == "C0ROLLOUTS"
    assert "wave 1 (staging) of 6" in status.text
    assert "wave.promote" not in (status.blocks or "")  # the window has not passed
    assert "wave.pause" in (status.blocks or "")
    (event,) = thread_posts(ctx.session, current.id)
    assert "started *1.0*" in event
    (sent,) = actuator.sent
    assert (sent.action, sent.release, sent.wave, sent.tiers) == (
        "start",
        "1.0",
        "staging",
        ["staging"],
    )
    (ok,) = [e for e in audit_trail(ctx.session, "wave.start") if e.outcome == "ok"]
    assert ok.actor == MANAGER


async def test_a_severity_2_incident_blocks_a_start(ctx: Context) -> None:
    await ready_release(ctx, "1.0")
    incident = open_incident(ctx, severity=2)
    reply = await run(ctx, "/wave start 1.0")
    assert reply.error
    assert (
        f"incident #{incident.id} (sev2 provider-outage: LLM provider down) is open" in reply.text
    )
    assert ctx.session.exec(select(Rollout)).first() is None


async def test_a_severity_3_incident_does_not_block(ctx: Context) -> None:
    await ready_release(ctx, "1.0")
    open_incident(ctx, severity=3)
    reply = await run(ctx, "/wave start 1.0")
    assert not reply.error, reply.text


async def test_forced_start_past_an_incident_lands_in_its_timeline(ctx: Context) -> None:
    await ready_release(ctx, "1.0")
    incident = open_incident(ctx)
    reply = await run(ctx, "/wave start 1.0 --force hotfix for the outage itself")
    assert not reply.error, reply.text
    (entry,) = ctx.session.exec(select(TimelineEntry)).all()
    assert entry.incident_id == incident.id
    assert entry.kind == "override"
    assert "hotfix for the outage itself" in entry.text
    (ok,) = [e for e in audit_trail(ctx.session, "wave.start") if e.outcome == "ok"]
    assert ok.reason == "hotfix for the outage itself"
    assert "forced past: incident" in (ok.detail or "")


async def test_forced_start_needs_the_force_permission(ctx: Context, policy: object) -> None:
    await ready_release(ctx, "1.0")
    open_incident(ctx)
    ctx.policy = ctx.policy.model_copy(
        update={"permissions": {"wave.start": ["everyone"], "wave.force": ["release-managers"]}}
    )
    reply = await run(ctx, "/wave start 1.0 --force please", user=DEVELOPER)
    assert reply.error
    assert "only release-managers may force past a closed gate" in reply.text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/wave start", "missing RELEASE"),
        ("/wave start 1.0 nightly", "the policy has no plan 'nightly'; plans: default"),
        ("/wave start 1.0 default extra", "too many words"),
        ("/wave start 9.9", "no release '9.9' is registered"),
        ("/wave start 1.0 --force", "--force needs a REASON"),
    ],
)
async def test_bad_start_says_what_is_wrong_and_changes_nothing(
    ctx: Context, line: str, message: str
) -> None:
    await ready_release(ctx, "1.0")
    reply = await run(ctx, line)
    assert reply.error
    assert message in reply.text
    assert "/wave start RELEASE [PLAN]" in reply.text
    assert ctx.session.exec(select(Rollout)).first() is None


async def test_a_release_is_started_once(ctx: Context) -> None:
    await start(ctx, "1.0")
    reply = await run(ctx, "/wave start 1.0")
    assert reply.error
    assert "1.0 already has a rollout (running)" in reply.text


# ---------------------------------------------------------------- promote


async def test_promote_is_refused_before_the_window_elapses(ctx: Context, clock: FakeClock) -> None:
    await start(ctx, "1.0")
    await observe(ctx, "1.0", 3600, step=600)
    reply = await run(ctx, "/wave promote")
    assert reply.error
    assert "wave 1 (staging) has been observed 1h of 2h (1h to go)" in reply.text
    assert rollout(ctx, "1.0").wave_index == 0
    refusal = audit_trail(ctx.session, "wave.promote")[-1]
    assert refusal.outcome == "refused"
    assert "1h to go" in (refusal.reason or "")


async def test_promote_is_refused_without_enough_valid_samples(
    ctx: Context, clock: FakeClock
) -> None:
    await start(ctx, "1.0")
    await observe(ctx, "1.0", 1200, step=600)  # two polls, then nothing
    clock.advance(hours=2)
    reply = await run(ctx, "/wave promote 1.0")
    assert reply.error
    assert "completion_success_rate has 2 of 3 valid samples" in reply.text
    assert "observed" not in reply.text


async def test_promote_after_a_healthy_window_advances_one_wave(ctx: Context) -> None:
    actuator = local_actuator(ctx)
    await start(ctx, "1.0")
    await observe(ctx, "1.0", 7200, step=600)
    reply = await run(ctx, "/wave promote")
    assert not reply.error, reply.text
    assert reply.text == "Promoted 1.0 to wave 2 (internal) — internal at 100%."
    current = rollout(ctx, "1.0")
    assert (current.wave_index, current.version, current.verdict) == (1, 2, "running")
    assert current.wave_started_at == ctx.now()
    assert [a.action for a in actuator.sent] == ["start", "promote"]
    assert actuator.sent[-1].wave == "internal"
    assert any(
        "promoted *1.0* to wave 2 (internal)" in t for t in thread_posts(ctx.session, current.id)
    )


async def test_promote_is_refused_while_an_incident_is_open(ctx: Context) -> None:
    await start(ctx, "1.0")
    await observe(ctx, "1.0", 7200, step=600)
    incident = open_incident(ctx, severity=1)
    reply = await run(ctx, "/wave promote")
    assert reply.error
    assert f"incident #{incident.id} (sev1 provider-outage" in reply.text


async def test_promote_is_refused_while_a_metric_fails(ctx: Context) -> None:
    await start(ctx, "1.0")
    demo(ctx).drift("migration_error_rate", 0.2)
    await observe(ctx, "1.0", 600, step=600)
    reply = await run(ctx, "/wave promote")
    assert reply.error
    assert "it is paused (a metric failed)" in reply.text
    # Escaped for Slack mrkdwn, which shows `&gt;` as `>`.
    assert (
        "migration_error_rate is failed: 1 failed poll (limit 0): 0.2 breaks &gt; 0.01"
        in reply.text
    )


async def test_force_overrides_the_gate_and_is_audited(ctx: Context) -> None:
    await start(ctx, "1.0")
    reply = await run(ctx, "/wave promote --force staging is empty this week")
    assert not reply.error, reply.text
    assert rollout(ctx, "1.0").wave_index == 1
    promoted = [e for e in audit_trail(ctx.session, "wave.promote") if e.outcome == "ok"]
    assert promoted[-1].reason == "staging is empty this week"
    assert "forced past: wave 1 (staging) has been observed 0s of 2h" in (promoted[-1].detail or "")


async def test_force_never_overrides_the_permission(ctx: Context) -> None:
    await start(ctx, "1.0")
    reply = await run(ctx, "/wave promote --force trust me", user=DEVELOPER)
    assert reply.error
    assert "only release-managers may promote a wave" in reply.text
    assert rollout(ctx, "1.0").wave_index == 0


async def test_promoting_past_the_last_wave_completes_the_rollout(ctx: Context) -> None:
    await run(ctx, "/ready new 0.9")
    await start(ctx, "1.0")
    for _ in range(5):
        assert not (await run(ctx, "/wave promote --force test")).error
    reply = await run(ctx, "/wave promote --force test")
    assert reply.text == "Promoted wave 6 (enterprise): 1.0 is complete."
    current = rollout(ctx, "1.0")
    assert current.state == "complete"
    release = get_release("1.0", session=ctx.session)
    assert release is not None
    assert release.state == ReleaseState.complete
    from storage.releases import last_known_good

    assert last_known_good(session=ctx.session).version == "1.0"  # type: ignore[union-attr]
    again = await run(ctx, "/wave promote 1.0")
    assert "1.0 is already complete; nothing changed" in again.text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/wave promote --force", "--force needs a REASON"),
        ("/wave promote --fast", "unknown option '--fast'"),
        ("/wave promote 7.7", "no release '7.7' is registered"),
    ],
)
async def test_bad_promote_says_what_is_wrong(ctx: Context, line: str, message: str) -> None:
    await start(ctx, "1.0")
    reply = await run(ctx, line)
    assert reply.error
    assert message in reply.text
    assert "Usage: `/wave promote [RELEASE] [--force REASON]`" in reply.text
    assert rollout(ctx, "1.0").version == 1


async def test_with_several_active_rollouts_the_release_must_be_named(ctx: Context) -> None:
    await start(ctx, "1.0")
    await start(ctx, "2.0")
    reply = await run(ctx, "/wave promote")
    assert reply.error
    assert "several rollouts are active: 1.0 (running), 2.0 (running)" in reply.text
    named = await run(ctx, "/wave promote 2.0 --force test")
    assert not named.error
    assert (rollout(ctx, "1.0").wave_index, rollout(ctx, "2.0").wave_index) == (0, 1)


async def test_nothing_active_says_how_to_start(ctx: Context) -> None:
    reply = await run(ctx, "/wave promote")
    assert reply.error
    assert "no rollout is active" in reply.text


# ---------------------------------------------------------------- pause, resume


async def test_pause_and_resume(ctx: Context, clock: FakeClock) -> None:
    actuator = local_actuator(ctx)
    await start(ctx, "1.0")
    clock.advance(minutes=30)
    paused = await run(ctx, "/wave pause db replica lagging", user=DEVELOPER)
    assert not paused.error, paused.text
    current = rollout(ctx, "1.0")
    assert (current.state, current.pause_kind, current.paused_reason) == (
        "paused",
        "manual",
        "db replica lagging",
    )
    assert get_release("1.0", session=ctx.session).state == ReleaseState.paused  # type: ignore[union-attr]
    clock.advance(minutes=30)
    resumed = await run(ctx, "/wave resume")
    assert "wave 1 (staging) is observed for 2h from now" in resumed.text
    current = rollout(ctx, "1.0")
    assert (current.state, current.pause_kind, current.wave_started_at) == (
        "running",
        None,
        ctx.now(),
    )
    assert [a.action for a in actuator.sent] == ["start", "pause", "resume"]
    events = thread_posts(ctx.session, current.id)
    assert any("paused at wave 1 (staging)" in t and "db replica lagging" in t for t in events)
    assert any("resumed *1.0*" in t for t in events)
    actions = [
        (e.action, e.outcome) for e in audit_trail(ctx.session) if e.action.startswith("wave.")
    ]
    assert ("wave.pause", "ok") in actions
    assert ("wave.resume", "ok") in actions


async def test_pause_needs_a_reason(ctx: Context) -> None:
    await start(ctx, "1.0")
    reply = await run(ctx, "/wave pause 1.0")
    assert reply.error
    assert "say why the rollout is paused" in reply.text
    assert rollout(ctx, "1.0").state == "running"


async def test_pause_twice_and_resume_when_running_are_conflicts(ctx: Context) -> None:
    await start(ctx, "1.0")
    resume = await run(ctx, "/wave resume")
    assert "1.0 is running, not paused; nothing to resume" in resume.text
    await run(ctx, "/wave pause first")
    again = await run(ctx, "/wave pause second")
    assert "1.0 is already paused (manual): first" in again.text
    refused = [e.action for e in audit_trail(ctx.session) if e.outcome == "refused"]
    assert refused == ["wave.resume", "wave.pause"]


async def test_resume_needs_the_permission(ctx: Context) -> None:
    await start(ctx, "1.0")
    await run(ctx, "/wave pause checking")
    reply = await run(ctx, "/wave resume", user=DEVELOPER)
    assert "only release-managers may resume a rollout" in reply.text
    assert rollout(ctx, "1.0").state == "paused"


# ---------------------------------------------------------------- status, history, help


async def test_status_shows_each_metric_with_value_condition_and_trend(ctx: Context) -> None:
    await start(ctx, "1.0")
    await observe(ctx, "1.0", 3600, step=600)
    reply = await run(ctx, "/wave")
    assert (
        "*1.0* · wave 1 (staging) of 6: staging at 100% · running · observed 1h of 2h" in reply.text
    )
    line = next(t for t in reply.text.splitlines() if "completion_success_rate" in t)
    assert "(success >= 0.97)" in line
    assert "6 samples (3 needed)" in line
    assert any(ch in line for ch in "▁▂▃▄▅▆▇█")
    assert "dry run (shown, not counted)" in reply.text
    assert reply.blocks
    assert reply.blocks[0]["type"] == "header"


async def test_status_with_nothing_active(ctx: Context) -> None:
    reply = await run(ctx, "/wave status")
    assert reply.text.startswith("No rollout is active.")


async def test_status_of_a_named_release_without_rollout(ctx: Context) -> None:
    await run(ctx, "/ready new 1.0")
    reply = await run(ctx, "/wave status 1.0")
    assert "1.0 (candidate) has no rollout yet" in reply.text
    unknown = await run(ctx, "/wave status 5.5")
    assert unknown.error
    assert "no release '5.5' is registered" in unknown.text


async def test_history_is_the_whole_trail(ctx: Context, clock: FakeClock) -> None:
    await start(ctx, "1.0")
    await run(ctx, "/wave promote", user=DEVELOPER)
    await run(ctx, "/wave pause checking dashboards")
    reply = await run(ctx, "/wave history")
    lines = reply.text.splitlines()
    assert lines[0] == "History of 1.0 (paused), newest first: page 1 of 1 (10 events)."
    assert any("registered the release" in line for line in lines)
    assert any("started the rollout" in line and "plan default" in line for line in lines)
    assert any(
        "<@U0DEV1> promoted (was refused)" in line and "may promote a wave" in line
        for line in lines
    )
    # Newest first: the pause is the first event.
    assert lines[1].endswith("paused — manual at wave 1 (staging) — why: checking dashboards")


async def test_help_lists_every_wave_command(ctx: Context) -> None:
    reply = await run(ctx, "/wave help")
    for usage in [
        "/wave status [RELEASE]",
        "/wave start RELEASE [PLAN]",
        "/wave promote [RELEASE] [--force REASON]",
        "/wave pause [RELEASE] REASON",
        "/wave resume [RELEASE]",
        "/wave history [RELEASE] [PAGE]",
    ]:
        assert usage in reply.text


async def test_window_is_judged_from_the_injected_clock(ctx: Context, clock: FakeClock) -> None:
    await start(ctx, "1.0")
    await observe(ctx, "1.0", 7200 - 600, step=600)
    assert (await run(ctx, "/wave promote")).error
    clock.advance(timedelta(minutes=10))
    assert not (await run(ctx, "/wave promote")).error


async def test_a_wave_with_approvers_needs_both_the_permission_and_the_role(
    ctx: Context,
) -> None:
    from tests.support.waves import small_policy

    ctx.policy = small_policy()  # wave 3 (pro) names approvers: vips = [U0VIP1]
    await start(ctx, "1.0")
    await run(ctx, "/wave promote --force setup")
    await run(ctx, "/wave promote --force setup")
    assert rollout(ctx, "1.0").wave_index == 2
    manager = await run(ctx, "/wave promote --force go")
    assert manager.text == "Not allowed: wave 3 (pro) is promoted only by its approvers (vips)"
    vip = await run(ctx, "/wave promote --force go", user="U0VIP1")
    assert "only release-managers may promote a wave" in vip.text
    ctx.policy = ctx.policy.model_copy(
        update={"roles": {**ctx.policy.roles, "vips": ["U0VIP1", MANAGER]}}
    )
    both = await run(ctx, "/wave promote --force go")
    assert both.text == "Promoted wave 3 (pro): 1.0 is complete."
    refusals = [e.actor for e in audit_trail(ctx.session, "wave.promote") if e.outcome == "refused"]
    assert refusals == [MANAGER, "U0VIP1"]
