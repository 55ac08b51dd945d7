"""Pause and resume: holding a rollout at its wave and continuing it, by hand or by wavegate."""

from __future__ import annotations

from typing import Any

from commands.analysis.judge import Verdict
from commands.core import Conflict, Context
from commands.text import escape
from commands.values import format_duration
from commands.wave import views
from commands.wave.rules.base import (
    ActuatorUnavailable,
    actuate,
    note_actuator_failure,
    plan_of,
    release_of,
    subject_of,
)
from commands.wave.rules.posts import audit, post_event, publish_status, who
from storage.incidents import add_timeline_entry, open_incidents_that_paused
from storage.models import PauseKind, Release, ReleaseState, Rollout, RolloutState
from storage.rollouts import active_rollouts, change_rollout


def _pause_buttons(kind: PauseKind, version: str, reason: str) -> list[Any]:
    if kind in (PauseKind.failed, PauseKind.budget, PauseKind.slo):
        return [views.rollback_button(version, reason), views.resume_button(version, "Resume")]
    if kind == PauseKind.inconclusive:
        return [
            views.resume_button(version, "Extend window"),
            views.rollback_button(version, reason),
        ]
    return [views.resume_button(version), views.rollback_button(version, reason)]


def _pause_advice(kind: PauseKind, version: str) -> str:
    if kind in (PauseKind.failed, PauseKind.budget, PauseKind.slo):
        return (
            f"Roll back, hold (do nothing), or declare an incident with `/incident declare`. "
            f"`/wave resume {version}` observes this wave afresh."
        )
    if kind == PauseKind.blind:
        return (
            "Nothing is rolled back because metrics are unavailable. Resume once the provider "
            f"is back: `/wave resume {version}`."
        )
    if kind == PauseKind.inconclusive:
        return (
            f"Extend the window (resume), promote anyway with `/wave promote {version} "
            "--force REASON`, or roll back."
        )
    return f"`/wave resume {version}` continues."


def _require_running(ctx: Context, rollout: Rollout, release: Release) -> None:
    if rollout.state != RolloutState.running:
        already = (
            f"{release.version} is already paused ({rollout.pause_kind}): {rollout.paused_reason}"
            if rollout.state == RolloutState.paused
            else f"{release.version} is {rollout.state}; there is nothing to pause"
        )
        raise Conflict(already, action="wave.pause", subject=subject_of(release))


async def pause_rollout(
    ctx: Context, rollout: Rollout, *, kind: PauseKind, reason: str, actor: str
) -> Rollout:
    release = release_of(ctx, rollout)
    _require_running(ctx, rollout, release)
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    await actuate(ctx, "pause", release, rollout, wave=wave, actor=actor, reason=reason)
    return _record_pause(ctx, rollout, release, kind=kind, reason=reason, actor=actor)


def _record_pause(
    ctx: Context, rollout: Rollout, release: Release, *, kind: PauseKind, reason: str, actor: str
) -> Rollout:
    """The deploy system paused it: write the pause, audit it, say why in the thread."""
    if not change_rollout(
        rollout,
        session=ctx.session,
        state=RolloutState.paused,
        pause_kind=kind.value,
        paused_reason=reason[:2000],
        paused_at=ctx.now(),
    ):
        raise Conflict(
            f"{release.version} changed just now ({rollout.state}); nothing changed",
            action="wave.pause",
            subject=subject_of(release),
        )
    release.state = ReleaseState.paused
    ctx.session.add(release)
    label = views.wave_label(plan_of(ctx, rollout), rollout.wave_index)
    audit(ctx, release, "wave.pause", actor=actor, reason=reason, detail=f"{kind} at {label}")
    text = (
        f"⏸ *{release.version}* paused at {label} by {who(actor)} — "
        f"{views.PAUSE_WORDS[kind]}: {escape(reason)}\n{_pause_advice(kind, release.version)}"
    )
    post_event(ctx, rollout, text, _pause_buttons(kind, release.version, reason))
    publish_status(ctx, rollout, release)
    return rollout


async def resume_rollout(ctx: Context, rollout: Rollout, *, actor: str) -> Rollout:
    """Continue a paused rollout; the current wave is observed afresh from now.

    The caller checks the permission (`wave.resume`); wavegate itself never resumes a pause.
    """
    release = release_of(ctx, rollout)
    subject = subject_of(release)
    if rollout.state != RolloutState.paused:
        raise Conflict(
            f"{release.version} is {rollout.state}, not paused; nothing to resume",
            action="wave.resume",
            subject=subject,
        )
    waves = plan_of(ctx, rollout)
    wave = waves[rollout.wave_index]
    was = rollout.pause_kind
    await actuate(ctx, "resume", release, rollout, wave=wave, actor=actor)
    now = ctx.now()
    if not change_rollout(
        rollout,
        session=ctx.session,
        state=RolloutState.running,
        pause_kind=None,
        paused_reason=None,
        paused_at=None,
        wave_started_at=now,
        verdict=Verdict.running.value,
        ready_at=None,
    ):
        raise Conflict(
            f"{release.version} changed just now ({rollout.state}); nothing changed",
            action="wave.resume",
            subject=subject,
        )
    release.state = ReleaseState.rolling_out
    ctx.session.add(release)
    label = views.wave_label(waves, rollout.wave_index)
    audit(ctx, release, "wave.resume", actor=actor, detail=f"{label}; was paused ({was})")
    assert rollout.id is not None
    # A person may resume while an incident that paused the rollout is still open; its timeline
    # says so, since the incident's summary would otherwise still list the rollout as paused.
    for incident in open_incidents_that_paused(rollout.id, session=ctx.session):
        assert incident.id is not None
        add_timeline_entry(
            incident.id,
            actor=actor,
            kind="rollout",
            text=f"resumed {release.version} ({label}) while the incident is open",
            at=now,
            session=ctx.session,
        )
    post_event(
        ctx,
        rollout,
        f"▶️ {who(actor)} resumed *{release.version}*: {label} is observed afresh for "
        f"{format_duration(wave.observe)}.",
    )
    publish_status(ctx, rollout, release)
    return rollout


async def pause_running_rollouts(
    ctx: Context, *, kind: PauseKind, reason: str, actor: str
) -> list[Rollout]:
    """Pause every running rollout (an incident's `pause_rollouts`); returns the ones paused.

    The deploy system is told about every one first, then the pauses are written, so no call
    is awaited inside this function's writes. A rollout the deploy system would not pause stays
    running; its thread says so.
    """
    confirmed: list[tuple[Rollout, Release]] = []
    failures: list[ActuatorUnavailable] = []
    for rollout, release in active_rollouts(session=ctx.session):
        if rollout.state != RolloutState.running:
            continue
        wave = plan_of(ctx, rollout)[rollout.wave_index]
        try:
            await actuate(ctx, "pause", release, rollout, wave=wave, actor=actor, reason=reason)
        except ActuatorUnavailable as err:
            failures.append(err)
            continue
        confirmed.append((rollout, release))
    paused: list[Rollout] = []
    for rollout, release in confirmed:
        try:
            paused.append(
                _record_pause(ctx, rollout, release, kind=kind, reason=reason, actor=actor)
            )
        except Conflict:
            continue  # changed under us (promoted, paused): nothing to do
    for failure in failures:
        note_actuator_failure(ctx, failure, actor=actor, retry=None)
    return paused
