"""Polling and reactions: due polls, recording readings, acting on verdicts; the daily digest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from commands.analysis.judge import Verdict, WaveVerdict
from commands.analysis.measure import Phase, Reading, classify
from commands.analysis.polls import cost_forecast, dry_run_findings, dry_run_report, plan_poll
from commands.analysis.reads import DuePoll
from commands.analysis.standing import Taken, store_polls, wave_standing
from commands.announce import announce
from commands.core import Conflict, Context, GateClosed
from commands.policy import Metric, Wave
from commands.text import escape, mention
from commands.values import format_duration
from commands.wave import views
from commands.wave.rules.advance import promote_rollout
from commands.wave.rules.base import SYSTEM, ActuatorUnavailable, plan_of, release_of, subject_of
from commands.wave.rules.gate import judge_rollout, view_of
from commands.wave.rules.pause import pause_rollout
from commands.wave.rules.posts import audit, post_event, publish_status
from commands.wave.rules.rollback import rollback_release
from storage.audit import Outcome, event_exists, record_event
from storage.models import PauseKind, Release, Rollout, RolloutState
from storage.rollouts import active_rollouts, mark_ready, set_verdict
from storage.tallies import TallyRow


def metrics_due_at(
    ctx: Context, rollout: Rollout, *, tallies: Mapping[str, TallyRow] | None = None
) -> list[tuple[Metric, datetime]]:
    """Each metric of the current wave with when its next poll is due: a metric never polled in
    this wave since the wave began; otherwise at its last poll plus `interval`, or plus
    `error_retry` (capped at the interval) after an error. `tallies`: the wave's, when read."""
    assert rollout.id is not None
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    metrics = ctx.policy.wave_metrics(wave)
    standing = wave_standing(
        (rollout.id, rollout.wave_index),
        rollout.wave_started_at,
        metrics,
        session=ctx.session,
        rows=tallies,
    )
    due_at = []
    for metric in metrics:
        last = standing[metric.id].last
        if last is None or last.at is None:
            due_at.append((metric, rollout.wave_started_at))
            continue
        wait = metric.retry_after_error if last.phase == Phase.error else metric.interval
        due_at.append((metric, last.at + wait))
    return due_at


def due_polls(
    ctx: Context, rollout: Rollout, *, tallies: Mapping[str, TallyRow] | None = None
) -> list[DuePoll]:
    """The metrics of the current wave whose next poll is due (errors retry sooner).
    `tallies`: the wave's stored tallies, when read already."""
    release = release_of(ctx, rollout)
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    now = ctx.now()
    return [
        plan_poll(
            metric,
            release=release,
            wave=wave,
            wave_started_at=rollout.wave_started_at,
            now=now,
            session=ctx.session,
        )
        for metric, at in metrics_due_at(ctx, rollout, tallies=tallies)
        if at <= now
    ]


def taken_of(
    ctx: Context,
    rollout: Rollout,
    *,
    wave_index: int,
    taken_at: datetime,
    readings: Sequence[tuple[Metric, Reading]],
) -> Taken | None:
    """The readings classified as polls to store, unless the rollout moved on meanwhile."""
    if rollout.state != RolloutState.running or rollout.wave_index != wave_index:
        return None
    assert rollout.id is not None
    polls = [
        (metric.id, classify(metric, reading, path=ctx.policy.metric_path(metric)))
        for metric, reading in readings
    ]
    return Taken((rollout.id, wave_index), rollout.wave_started_at, taken_at, polls)


def record_readings(
    ctx: Context,
    rollout: Rollout,
    *,
    wave_index: int,
    taken_at: datetime,
    readings: Sequence[tuple[Metric, Reading]],
) -> int:
    """Store one poll per reading, unless the rollout moved on meanwhile. Returns how many."""
    taken = taken_of(ctx, rollout, wave_index=wave_index, taken_at=taken_at, readings=readings)
    if taken is None:
        return 0
    store_polls([taken], session=ctx.session)
    return len(readings)


def quiet(
    ctx: Context, rollout: Rollout, tallies: Mapping[str, TallyRow]
) -> tuple[bool, Verdict | None]:
    """Whether `react` would change nothing, and what it would return then: a rollout not
    running or with an action pending (None), or a running verdict as stored with no dry-run
    finding to report (running). The poller reacts in full only where this is not so."""
    if rollout.state != RolloutState.running or rollout.pending_action is not None:
        return True, None
    judgement = judge_rollout(ctx, rollout, tallies=tallies)
    if (
        judgement.verdict != Verdict.running
        or rollout.verdict != Verdict.running.value
        or dry_run_findings(judgement.metrics)
    ):
        return False, None
    return True, Verdict.running


def _only_budgets(judgement: WaveVerdict) -> bool:
    deciding = judgement.deciding
    return bool(deciding) and all(
        m.metric.budget is not None and m.metric.failure is None and m.metric.success is None
        for m in deciding
    )


async def react(ctx: Context, rollout: Rollout) -> Verdict | None:
    """What wavegate does about the current verdict of a running rollout (DESIGN §4).

    Nothing while an action is pending on it: that action settles first (DESIGN §10)."""
    if rollout.state != RolloutState.running or rollout.pending_action is not None:
        return None
    release = release_of(ctx, rollout)
    waves = plan_of(ctx, rollout)
    wave = waves[rollout.wave_index]
    judgement = judge_rollout(ctx, rollout)
    verdict = judgement.verdict
    index = rollout.wave_index
    try:
        if verdict == Verdict.failed:
            critical = [m.metric.id for m in judgement.deciding if m.metric.critical]
            if critical or wave.auto_rollback:
                why = f"critical metric {', '.join(critical)}" if critical else "auto_rollback"
                await rollback_release(
                    ctx,
                    release,
                    reason=f"automatic rollback ({why}): {judgement.reason}",
                    actor=SYSTEM,
                )
                return verdict
            kind = PauseKind.budget if _only_budgets(judgement) else PauseKind.failed
            await pause_rollout(ctx, rollout, kind=kind, reason=judgement.reason, actor=SYSTEM)
        elif verdict == Verdict.error:
            kind = PauseKind.misconfigured if judgement.misconfigured else PauseKind.blind
            await pause_rollout(ctx, rollout, kind=kind, reason=judgement.reason, actor=SYSTEM)
        elif verdict == Verdict.inconclusive:
            await pause_rollout(
                ctx, rollout, kind=PauseKind.inconclusive, reason=judgement.reason, actor=SYSTEM
            )
        elif verdict == Verdict.successful:
            await _wave_ready(ctx, rollout, release, waves)
    except ActuatorUnavailable:
        pass  # left where it was (the thread says so, once); the next poll tries again
    except Conflict:
        pass  # a person changed the rollout meanwhile; the next poll judges what is there now
    # Written after the reaction, so the deploy system is never awaited inside a write (SQLite's
    # lock); a promotion already started the next wave's verdict afresh.
    # (The reaction may have moved the rollout: read its state afresh.)
    if rollout.wave_index == index and RolloutState(rollout.state) != RolloutState.complete:
        changed = rollout.verdict != verdict.value
        set_verdict(rollout, verdict.value, session=ctx.session)
        if changed and rollout.state == RolloutState.running:
            # The message says what the thread says: a new verdict is shown at once.
            publish_status(ctx, rollout, release)
    report_dry_runs(ctx, rollout, judgement, label=views.wave_label(waves, index))
    return verdict


def report_dry_runs(ctx: Context, rollout: Rollout, judgement: WaveVerdict, *, label: str) -> None:
    """A dry-run metric that would have paused the wave says so once in the thread."""
    release = release_of(ctx, rollout)
    for mv in dry_run_findings(judgement.metrics):
        started = int(rollout.wave_started_at.timestamp())
        detail = f"{mv.metric.id}@{rollout.id}:{rollout.wave_index}:{started}"
        subject = subject_of(release)
        if event_exists(action="wave.dry_run", subject=subject, detail=detail, session=ctx.session):
            continue
        post_event(ctx, rollout, dry_run_report(mv, wave_label=label))
        audit(ctx, release, "wave.dry_run", actor=SYSTEM, detail=detail)


async def _wave_ready(ctx: Context, rollout: Rollout, release: Release, waves: list[Wave]) -> None:
    index = rollout.wave_index
    wave = waves[index]
    label = views.wave_label(waves, index)
    held = ""
    if wave.auto_promote:
        try:
            await promote_rollout(ctx, rollout, actor=SYSTEM, request=None, expected_wave=index)
            return
        except GateClosed as err:
            held = f" Auto-promote is held: {escape(err.message)}."
    if not mark_ready(rollout, at=ctx.now(), session=ctx.session):
        return  # already offered for this wave
    roles = wave.approvers or ctx.policy.roles_for("wave.promote")
    people = sorted({m for r in roles for m in ctx.policy.roles.get(r, [])})
    who_may = " ".join(mention(p) for p in people) or ", ".join(roles)
    onward = (
        "complete the rollout"
        if index + 1 >= len(waves)
        else f"go to {views.wave_label(waves, index + 1)} ({views.exposure(waves[index + 1])})"
    )
    text = (
        f"✅ {label} of *{release.version}* is ready: observed "
        f"{format_duration(wave.observe)}, every metric passed.{held} {who_may}: promote to "
        f"{onward}."
    )
    forecasts = [cost_forecast(m, waves, index) for m in judge_rollout(ctx, rollout).metrics]
    text += "".join(f"\n💰 {f}" for f in forecasts if f)
    post_event(ctx, rollout, text, [views.promote_button(view_of(ctx, rollout, release))])
    audit(ctx, release, "wave.ready", actor=SYSTEM, detail=f"{label} ready for promotion")


# ---------------------------------------------------------------- digest


def daily_digest(ctx: Context) -> bool:
    """One post a day listing the active rollouts; idempotent per UTC day."""
    day = ctx.now().date().isoformat()
    if event_exists(action="wave.digest", subject="rollouts", detail=day, session=ctx.session):
        return False
    active = active_rollouts(session=ctx.session)
    record_event(
        actor=SYSTEM,
        action="wave.digest",
        subject="rollouts",
        outcome=Outcome.ok,
        detail=day,
        at=ctx.now(),
        session=ctx.session,
    )
    if not active:
        text = f"📋 Rollouts on {day}: none active."
    else:
        lines = [f"📋 Rollouts on {day}: {len(active)} active."]
        lines += [views.headline(view_of(ctx, r, rel)) for r, rel in active]
        text = "\n".join(lines)
    announce(ctx, text)
    return True
