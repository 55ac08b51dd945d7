"""Pause and resume: holding a rollout at its wave and continuing it, by hand or by wavegate.

Each is claimed (`claim_pause`, `claim_resume`), sent, and settled (`settle_pause`,
`settle_resume`) as commands/wave/rules/actuation.py describes; commands/wave/rules/queue.py
runs the three steps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from commands.analysis.judge import Verdict
from commands.core import Conflict, Context
from commands.text import escape, said
from commands.values import format_duration
from commands.wave import views
from commands.wave.rules.actuation import (
    Claim,
    actuation_of,
    claim_action,
    idle,
    new_key,
    note_of,
    pending_words,
    refuse_if_pending,
    send,
    settle,
)
from commands.wave.rules.base import ActuatorUnavailable, plan_of, release_of, subject_of
from commands.wave.rules.posts import audit, post_event, publish_status, who
from storage.incidents import add_timeline_entry, link_paused_rollout, open_incidents_that_paused
from storage.models import PauseKind, Release, ReleaseState, Rollout, RolloutState
from storage.rollouts import pending_or_active_rollouts, set_queued_pause


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
            else f"{release.version} is {said(rollout.state)}; there is nothing to pause"
        )
        raise Conflict(already, action="wave.pause", subject=subject_of(release))


def claim_pause(
    ctx: Context,
    rollout: Rollout,
    *,
    kind: PauseKind,
    reason: str,
    actor: str,
    incident: int | None = None,
    retry: dict[str, Any] | None = None,
) -> Claim:
    """Claim a pause of a running rollout at its current wave."""
    release = release_of(ctx, rollout)
    refuse_if_pending(ctx, rollout, release, action="pause")
    _require_running(ctx, rollout, release)
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    key = new_key(release, "pause", rollout)
    actuation = actuation_of("pause", release, key=key, actor=actor, wave=wave, reason=reason)
    note = {"kind": kind.value, "incident": incident, "retry": retry}
    return claim_action(
        ctx,
        rollout,
        release,
        actuation,
        state=RolloutState.paused,
        wave_index=rollout.wave_index,
        note=note,
    )


def settle_pause(ctx: Context, claim: Claim) -> Rollout:
    """The deploy system paused it: write the pause, audit it, say why in the thread."""
    before = ctx.session.get(Rollout, claim.rollout_id)
    assert before is not None
    note = note_of(before)
    kind = PauseKind(note.get("kind") or PauseKind.manual)
    reason = before.pending_reason or ""
    actor = claim.actuation.actor
    rollout = settle(
        ctx,
        claim,
        state=RolloutState.paused,
        pause_kind=kind.value,
        paused_reason=reason[:2000],
        paused_at=ctx.now(),
    )
    release = release_of(ctx, rollout)
    release.state = ReleaseState.paused
    ctx.session.add(release)
    incident = note.get("incident")
    if isinstance(incident, int):
        assert rollout.id is not None
        link_paused_rollout(incident, rollout.id, session=ctx.session)
    label = views.wave_label(plan_of(ctx, rollout), rollout.wave_index)
    audit(ctx, release, "wave.pause", actor=actor, reason=reason, detail=f"{kind} at {label}")
    text = (
        f"⏸ *{release.version}* paused at {label} by {who(actor)} — "
        f"{views.PAUSE_WORDS[kind]}: {escape(reason)}\n{_pause_advice(kind, release.version)}"
    )
    post_event(ctx, rollout, text, _pause_buttons(kind, release.version, reason))
    publish_status(ctx, rollout, release)
    return rollout


def claim_resume(
    ctx: Context, rollout: Rollout, *, actor: str, retry: dict[str, Any] | None = None
) -> Claim:
    """Claim the resumption of a paused rollout. The caller checks `wave.resume`; wavegate
    itself never resumes a pause."""
    release = release_of(ctx, rollout)
    refuse_if_pending(ctx, rollout, release, action="resume")
    if rollout.state != RolloutState.paused:
        raise Conflict(
            f"{release.version} is {said(rollout.state)}, not paused; nothing to resume",
            action="wave.resume",
            subject=subject_of(release),
        )
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    key = new_key(release, "resume", rollout)
    actuation = actuation_of("resume", release, key=key, actor=actor, wave=wave)
    note = {"was": rollout.pause_kind, "retry": retry}
    return claim_action(
        ctx,
        rollout,
        release,
        actuation,
        state=RolloutState.running,
        wave_index=rollout.wave_index,
        note=note,
    )


def settle_resume(ctx: Context, claim: Claim) -> Rollout:
    """The deploy system resumed it: the current wave is observed afresh from now."""
    before = ctx.session.get(Rollout, claim.rollout_id)
    assert before is not None
    was = note_of(before).get("was")
    actor = claim.actuation.actor
    now = ctx.now()
    rollout = settle(
        ctx,
        claim,
        state=RolloutState.running,
        pause_kind=None,
        paused_reason=None,
        paused_at=None,
        wave_started_at=now,
        verdict=Verdict.running.value,
        ready_at=None,
    )
    release = release_of(ctx, rollout)
    release.state = ReleaseState.rolling_out
    ctx.session.add(release)
    waves = plan_of(ctx, rollout)
    wave = waves[rollout.wave_index]
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


# ---------------------------------------------------------------- the three steps


Settle = Callable[[Context, Claim], Rollout]


async def send_and_settle(ctx: Context, claim: Claim, settle_claim: Settle) -> Rollout:
    """Send a claimed action with nothing held, settle it, then run an incident's pause that
    was queued behind it (on success and on failure alike: the incident still wants it)."""
    try:
        await send(ctx, claim)
        return settle_claim(ctx, claim)
    finally:
        await run_queued_pause(ctx, claim.rollout_id)


async def pause_rollout(
    ctx: Context,
    rollout: Rollout,
    *,
    kind: PauseKind,
    reason: str,
    actor: str,
    retry: dict[str, Any] | None = None,
) -> Rollout:
    claim = claim_pause(ctx, rollout, kind=kind, reason=reason, actor=actor, retry=retry)
    await send(ctx, claim)
    return settle_pause(ctx, claim)


async def resume_rollout(
    ctx: Context, rollout: Rollout, *, actor: str, retry: dict[str, Any] | None = None
) -> Rollout:
    """Continue a paused rollout; the current wave is observed afresh from now."""
    claim = claim_resume(ctx, rollout, actor=actor, retry=retry)
    return await send_and_settle(ctx, claim, settle_resume)


# ---------------------------------------------------------------- an incident's pause


@dataclass
class IncidentPauses:
    """What an incident's `pause_rollouts` did: paused, queued behind a pending action, or
    left running because the deploy system did not confirm."""

    paused: list[Rollout] = field(default_factory=list)
    queued: list[tuple[Rollout, str]] = field(default_factory=list)
    failed: list[Rollout] = field(default_factory=list)


def _queue_pause(
    ctx: Context, rollout: Rollout, *, reason: str, actor: str, incident: int | None
) -> bool:
    queued = json.dumps({"reason": reason, "actor": actor, "incident": incident})
    if not set_queued_pause(rollout, queued, session=ctx.session):
        return False
    if rollout.state != RolloutState.starting:
        words = pending_words(ctx, rollout, release_of(ctx, rollout))
        post_event(
            ctx, rollout, f"⏸ Queued a pause ({escape(reason)}): {words}; it runs right after."
        )
    return True


async def run_queued_pause(ctx: Context, rollout_id: int) -> Rollout | None:
    """The incident's pause queued behind an action that has just settled: claimed, sent and
    settled now, unless the rollout is no longer running (rolled back, complete, paused)."""
    rollout = ctx.session.get(Rollout, rollout_id)
    if rollout is None:
        return None
    ctx.session.refresh(rollout)
    if rollout.queued_pause is None or rollout.pending_action is not None:
        return None
    queued = json.loads(rollout.queued_pause)
    set_queued_pause(rollout, None, session=ctx.session)
    if rollout.state != RolloutState.running:
        return None
    incident = queued.get("incident")
    try:
        claim = claim_pause(
            ctx,
            rollout,
            kind=PauseKind.incident,
            reason=str(queued.get("reason") or "incident"),
            actor=str(queued.get("actor") or "wavegate"),
            incident=incident if isinstance(incident, int) else None,
        )
        await send(ctx, claim)
        return settle_pause(ctx, claim)
    except (Conflict, ActuatorUnavailable):
        return None  # changed meanwhile, or the deploy system said no (the thread says so)


async def pause_running_rollouts(
    ctx: Context, *, kind: PauseKind, reason: str, actor: str, incident: int | None = None
) -> IncidentPauses:
    """Pause every running rollout (an incident's `pause_rollouts`).

    Every pause is claimed first, then the deploy system is called for all of them at once with
    nothing held, then each is settled. A rollout with a promote, resume or start pending gets
    the pause queued right behind it; one already pausing or rolling back is left to that."""
    done = IncidentPauses()
    claims: list[Claim] = []
    for rollout, release in pending_or_active_rollouts(session=ctx.session):
        if rollout.pending_action in ("promote", "resume", "start") and _queue_pause(
            ctx, rollout, reason=reason, actor=actor, incident=incident
        ):
            done.queued.append((rollout, pending_words(ctx, rollout, release)))
            continue
        if rollout.state != RolloutState.running or rollout.pending_action is not None:
            continue
        try:
            claims.append(
                claim_pause(ctx, rollout, kind=kind, reason=reason, actor=actor, incident=incident)
            )
        except Conflict:
            continue  # changed under us (promoted, paused): nothing to do
    idle(ctx)
    sent = await asyncio.gather(*(send(ctx, c) for c in claims), return_exceptions=True)
    for claim, outcome in zip(claims, sent, strict=True):
        if isinstance(outcome, ActuatorUnavailable):
            left = ctx.session.get(Rollout, claim.rollout_id)
            assert left is not None
            done.failed.append(left)
            continue
        if isinstance(outcome, BaseException):
            raise outcome
        try:
            done.paused.append(settle_pause(ctx, claim))
        except Conflict:
            continue
    return done
