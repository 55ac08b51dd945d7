"""Start and promote: a rollout moving forward through its plan's waves, past the gate.

Each reads as the protocol's three steps (commands/wave/rules/actuation.py): `claim_start` /
`claim_promotion` (gate, permissions, the pending action committed), `send_and_settle` (the
webhook with nothing held), `settle_start` / `settle_promotion` (the state moves, audit, posts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from commands.access import require
from commands.analysis.guardrails import error_budget_blockers
from commands.analysis.judge import Verdict
from commands.core import Conflict, Context, GateClosed, Request
from commands.policy import Wave
from commands.ready.checklist import require_complete
from commands.text import escape, mention, said
from commands.values import format_duration
from commands.wave import views
from commands.wave.rules.actuation import (
    Claim,
    actuation_of,
    claim_action,
    idle,
    new_key,
    note_of,
    pending_columns,
    refuse_if_pending,
    settle,
)
from commands.wave.rules.base import Blocker, plan_of, release_of, subject_of
from commands.wave.rules.gate import incident_blockers, promotion_blockers, require_promoter
from commands.wave.rules.pause import send_and_settle
from commands.wave.rules.posts import audit, post_event, publish_status, who
from storage.incidents import add_timeline_entry
from storage.models import Release, ReleaseState, Rollout, RolloutState
from storage.rollouts import ACTIVE, DuplicateRollout, create_rollout, rollout_of


def _moved_on(ctx: Context, rollout: Rollout, release: Release) -> Conflict:
    """The refusal for a stale button or a lost race: say where the rollout is now."""
    waves = plan_of(ctx, rollout)
    where = views.wave_label(waves, rollout.wave_index)
    if rollout.state == RolloutState.complete:
        text = f"{release.version} is already complete; nothing changed"
    elif rollout.state == RolloutState.rolled_back:
        text = f"{release.version} was already rolled back; nothing changed"
    else:
        text = f"{release.version} is already at {where} ({said(rollout.state)}); nothing changed"
    return Conflict(text, action="wave.promote", subject=subject_of(release))


def _overridden(blockers: Sequence[Blocker]) -> dict[str, Any]:
    """What settling records of the gates a `--force` went past (kept in the claim's note)."""
    return {
        "forced_past": "; ".join(b.text for b in blockers) or None,
        "incidents": [b.incident.id for b in blockers if b.incident is not None],
    }


def _record_overrides(
    ctx: Context, incidents: Sequence[int], *, actor: str, reason: str, what: str
) -> None:
    """An override lands in each blocking incident's timeline too."""
    for incident in incidents:
        if isinstance(incident, int):
            add_timeline_entry(
                incident,
                actor=actor,
                kind="override",
                text=f"{what} despite this incident, forced by {mention(actor)}: {reason}",
                at=ctx.now(),
                session=ctx.session,
            )


# ---------------------------------------------------------------- start


def check_start(
    ctx: Context, release: Release, plan: str, *, request: Request | None, forced: bool
) -> list[Wave]:
    """Everything a start needs that the database answers; returns the plan's waves."""
    subject = subject_of(release)
    if request is not None:
        require(ctx.policy, "wave.start", request, subject=subject)
        if forced:
            require(ctx.policy, "wave.force", request, subject=subject)
    existing = rollout_of(release, session=ctx.session)
    if existing is not None:
        refuse_if_pending(ctx, existing, release, action="start")
        raise Conflict(
            f"{release.version} already has a rollout ({said(existing.state)}); a release is "
            "rolled out once",
            action="wave.start",
            subject=subject,
        )
    if release.state != ReleaseState.candidate:
        raise Conflict(
            f"{release.version} is {said(release.state)}, not a candidate",
            action="wave.start",
            subject=subject,
        )
    waves = ctx.policy.plans.get(plan)
    if not waves:
        raise GateClosed(
            f"the policy has no plan {plan!r}; plans: {', '.join(ctx.policy.plans) or 'none'}",
            action="wave.start",
            subject=subject,
        )
    require_complete(release, ctx, action="wave.start")
    return waves


def claim_start(
    ctx: Context,
    release: Release,
    plan: str,
    *,
    actor: str,
    request: Request | None,
    force_reason: str | None,
    budget_blockers: Sequence[str],
    retry: dict[str, Any] | None,
) -> Claim:
    """The start's claim: a rollout row in the `starting` state, which nothing treats as
    started (not active, never polled, the release still a candidate) until it settles."""
    waves = check_start(ctx, release, plan, request=request, forced=force_reason is not None)
    blockers = incident_blockers(ctx) + [Blocker("slo", text) for text in budget_blockers]
    if blockers and force_reason is None:
        raise GateClosed(
            f"cannot start {release.version}: "
            + "; ".join(b.text for b in blockers)
            + ". An approver may override with --force REASON.",
            action="wave.start",
            subject=subject_of(release),
        )
    key = new_key(release, "start", None)
    first = waves[0]
    actuation = actuation_of(
        "start", release, key=key, actor=actor, wave=first, reason=force_reason
    )
    note = {**_overridden(blockers), "retry": retry}
    now = ctx.now()
    assert release.id is not None
    columns = pending_columns(ctx, actuation, state=RolloutState.running, wave_index=0, note=note)
    try:
        rollout = create_rollout(
            Rollout(
                release_id=release.id,
                plan=plan,
                state=RolloutState.starting,
                wave_started_at=now,
                started_by=actor,
                started_at=now,
                **columns,
            ),
            session=ctx.session,
        )
    except DuplicateRollout:
        raise Conflict(
            f"{release.version} was started by someone else just now",
            action="wave.start",
            subject=subject_of(release),
        ) from None
    assert rollout.id is not None
    return Claim(rollout.id, "start", key, ctx.ports.instance, actuation)


def settle_start(ctx: Context, claim: Claim) -> Rollout:
    """The deploy system started it: the rollout runs, the release is rolling out."""
    before = ctx.session.get(Rollout, claim.rollout_id)
    assert before is not None
    note = note_of(before)
    now = ctx.now()
    rollout = settle(
        ctx, claim, state=RolloutState.running, wave_index=0, wave_started_at=now, started_at=now
    )
    release = release_of(ctx, rollout)
    release.state = ReleaseState.rolling_out
    ctx.session.add(release)
    waves = plan_of(ctx, rollout)
    first = waves[0]
    actor, reason = claim.actuation.actor, claim.actuation.reason
    detail = f"plan {rollout.plan}; {views.wave_label(waves, 0)}: {views.exposure(first)}"
    if note.get("forced_past"):
        detail += f"; forced past: {note['forced_past']}"
        _record_overrides(
            ctx,
            note.get("incidents") or [],
            actor=actor,
            reason=reason or "",
            what=f"{release.version} started",
        )
    audit(ctx, release, "wave.start", actor=actor, reason=reason, detail=detail)
    publish_status(ctx, rollout, release)
    post_event(
        ctx,
        rollout,
        f"🚀 {who(actor)} started *{release.version}* (plan {rollout.plan}): "
        f"{views.wave_label(waves, 0)} — {views.exposure(first)}, observed for "
        f"{format_duration(first.observe)}.",
    )
    return rollout


async def start_rollout(
    ctx: Context,
    release: Release,
    plan: str,
    *,
    actor: str,
    request: Request | None,
    force_reason: str | None = None,
    retry: dict[str, Any] | None = None,
) -> Rollout:
    check_start(ctx, release, plan, request=request, forced=force_reason is not None)
    # An exhausted SLO error budget blocks a start too; it is read with nothing held.
    idle(ctx)
    budgets = await error_budget_blockers(ctx, release=release.version)
    claim = claim_start(
        ctx,
        release,
        plan,
        actor=actor,
        request=request,
        force_reason=force_reason,
        budget_blockers=budgets,
        retry=retry,
    )
    return await send_and_settle(ctx, claim, settle_start)


# ---------------------------------------------------------------- promote


def claim_promotion(
    ctx: Context,
    rollout: Rollout,
    *,
    actor: str,
    request: Request | None,
    force_reason: str | None = None,
    expected_wave: int | None = None,
    retry: dict[str, Any] | None = None,
) -> Claim:
    """Claim one wave forward (or completion past the last one).

    `request` None means wavegate itself (auto-promote): no permission check. `expected_wave` is
    the wave a button was posted for; a stale press changes nothing.
    """
    release = release_of(ctx, rollout)
    subject = subject_of(release)
    refuse_if_pending(ctx, rollout, release, action="promote")
    if rollout.state not in ACTIVE or (
        expected_wave is not None and rollout.wave_index != expected_wave
    ):
        raise _moved_on(ctx, rollout, release)
    waves = plan_of(ctx, rollout)
    index = rollout.wave_index
    label = views.wave_label(waves, index)
    if request is not None:
        require_promoter(
            ctx, request, waves[index], label, subject=subject, force=force_reason is not None
        )
    blockers = promotion_blockers(ctx, rollout)
    if blockers and force_reason is None:
        raise GateClosed(
            f"cannot promote {release.version} from {label}: "
            + "; ".join(b.text for b in blockers)
            + ". An approver may override with --force REASON.",
            action="wave.promote",
            subject=subject,
        )
    key = new_key(release, "promote", rollout)
    note = {
        **_overridden(blockers if force_reason else []),
        "force_reason": force_reason,
        "retry": retry,
    }
    if index + 1 >= len(waves):
        tiers = sorted({t for w in waves for t in w.tiers}, key=ctx.policy.tiers.index)
        actuation = actuation_of(
            "promote",
            release,
            key=key,
            actor=actor,
            wave=None,
            tiers=tiers,
            percent=100,
            reason=force_reason or "complete",
        )
        state = RolloutState.complete
    else:
        onward = waves[index + 1]
        actuation = actuation_of(
            "promote", release, key=key, actor=actor, wave=onward, reason=force_reason
        )
        state = RolloutState.running
    return claim_action(
        ctx, rollout, release, actuation, state=state, wave_index=index + 1, note=note
    )


def settle_promotion(ctx: Context, claim: Claim) -> Rollout:
    """The deploy system moved it: the next wave starts now, or the rollout is complete."""
    before = ctx.session.get(Rollout, claim.rollout_id)
    assert before is not None
    note = note_of(before)
    waves = plan_of(ctx, before)
    index = (before.pending_wave_index or 1) - 1
    label = views.wave_label(waves, index)
    actor = claim.actuation.actor
    force_reason = note.get("force_reason")
    now = ctx.now()
    cleared = {"pause_kind": None, "paused_reason": None, "paused_at": None}
    if before.pending_state == RolloutState.complete:
        rollout = settle(
            ctx,
            claim,
            state=RolloutState.complete,
            finished_at=now,
            verdict=Verdict.successful.value,
            **cleared,
        )
    else:
        rollout = settle(
            ctx,
            claim,
            state=RolloutState.running,
            wave_index=index + 1,
            wave_started_at=now,
            verdict=Verdict.running.value,
            ready_at=None,
            **cleared,
        )
    release = release_of(ctx, rollout)
    if rollout.state == RolloutState.complete:
        release.state = ReleaseState.complete
        release.completed_at = now
        detail = f"completed after {label}"
        event = (
            f"🏁 {who(actor)} promoted {label}: *{release.version}* is complete and is now the "
            "last known-good release."
        )
    else:
        release.state = ReleaseState.rolling_out
        onward = waves[index + 1]
        onward_label = views.wave_label(waves, index + 1)
        detail = f"{label} → {onward_label}: {views.exposure(onward)}"
        event = (
            f"⏫ {who(actor)} promoted *{release.version}* to {onward_label} — "
            f"{views.exposure(onward)}, observed for {format_duration(onward.observe)}."
        )
    ctx.session.add(release)
    if force_reason is not None and note.get("forced_past"):
        overridden = note["forced_past"]
        detail += f"; forced past: {overridden}"
        event += f"\nForced past: {escape(overridden)}. Reason: {escape(force_reason)}"
        _record_overrides(
            ctx,
            note.get("incidents") or [],
            actor=actor,
            reason=force_reason,
            what=f"{release.version} promoted from {label}",
        )
    audit(ctx, release, "wave.promote", actor=actor, reason=force_reason, detail=detail)
    post_event(ctx, rollout, event)
    publish_status(ctx, rollout, release)
    return rollout


async def promote_rollout(
    ctx: Context,
    rollout: Rollout,
    *,
    actor: str,
    request: Request | None,
    force_reason: str | None = None,
    expected_wave: int | None = None,
    retry: dict[str, Any] | None = None,
) -> Rollout:
    """Advance one wave (or complete the rollout past the last one): claim, send, settle."""
    claim = claim_promotion(
        ctx,
        rollout,
        actor=actor,
        request=request,
        force_reason=force_reason,
        expected_wave=expected_wave,
        retry=retry,
    )
    return await send_and_settle(ctx, claim, settle_promotion)
