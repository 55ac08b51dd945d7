"""Start and promote: a rollout moving forward through its plan's waves, past the gate."""

from __future__ import annotations

from collections.abc import Sequence

from commands.access import require
from commands.analysis.guardrails import error_budget_blockers
from commands.analysis.judge import Verdict
from commands.core import Conflict, Context, GateClosed, Request
from commands.ready.checklist import require_complete
from commands.text import escape, mention
from commands.values import format_duration
from commands.wave import views
from commands.wave.rules.base import Blocker, actuate, plan_of, release_of, subject_of
from commands.wave.rules.gate import incident_blockers, promotion_blockers, require_promoter
from commands.wave.rules.posts import audit, post_event, publish_status, who
from storage.incidents import add_timeline_entry
from storage.models import Release, ReleaseState, Rollout, RolloutState
from storage.rollouts import ACTIVE, DuplicateRollout, change_rollout, create_rollout, rollout_of


def _moved_on(ctx: Context, rollout: Rollout, release: Release) -> Conflict:
    """The refusal for a stale button or a lost race: say where the rollout is now."""
    waves = plan_of(ctx, rollout)
    where = views.wave_label(waves, rollout.wave_index)
    if rollout.state == RolloutState.complete:
        text = f"{release.version} is already complete; nothing changed"
    elif rollout.state == RolloutState.rolled_back:
        text = f"{release.version} was already rolled back; nothing changed"
    else:
        text = f"{release.version} is already at {where} ({rollout.state}); nothing changed"
    return Conflict(text, action="wave.promote", subject=subject_of(release))


def _record_overrides(
    ctx: Context, blockers: Sequence[Blocker], *, actor: str, reason: str, what: str
) -> None:
    """An override lands in each blocking incident's timeline too."""
    for blocker in blockers:
        if blocker.incident is not None and blocker.incident.id is not None:
            add_timeline_entry(
                blocker.incident.id,
                actor=actor,
                kind="override",
                text=f"{what} despite this incident, forced by {mention(actor)}: {reason}",
                at=ctx.now(),
                session=ctx.session,
            )


# ---------------------------------------------------------------- start


async def start_rollout(
    ctx: Context,
    release: Release,
    plan: str,
    *,
    actor: str,
    request: Request | None,
    force_reason: str | None = None,
) -> Rollout:
    subject = subject_of(release)
    if request is not None:
        require(ctx.policy, "wave.start", request, subject=subject)
        if force_reason is not None:
            require(ctx.policy, "wave.force", request, subject=subject)
    existing = rollout_of(release, session=ctx.session)
    if existing is not None:
        raise Conflict(
            f"{release.version} already has a rollout ({existing.state}); a release is rolled "
            "out once",
            action="wave.start",
            subject=subject,
        )
    if release.state != ReleaseState.candidate:
        raise Conflict(
            f"{release.version} is {release.state}, not a candidate",
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
    blockers = incident_blockers(ctx)
    # An exhausted SLO error budget blocks a start too (commands/guardrails.py).
    blockers += [
        Blocker("slo", text) for text in await error_budget_blockers(ctx, release=release.version)
    ]
    if blockers and force_reason is None:
        raise GateClosed(
            f"cannot start {release.version}: "
            + "; ".join(b.text for b in blockers)
            + ". An approver may override with --force REASON.",
            action="wave.start",
            subject=subject,
        )
    first = waves[0]
    await actuate(ctx, "start", release, None, wave=first, actor=actor, reason=force_reason)
    now = ctx.now()
    assert release.id is not None
    try:
        rollout = create_rollout(
            Rollout(
                release_id=release.id,
                plan=plan,
                wave_started_at=now,
                started_by=actor,
                started_at=now,
            ),
            session=ctx.session,
        )
    except DuplicateRollout:
        raise Conflict(
            f"{release.version} was started by someone else just now",
            action="wave.start",
            subject=subject,
        ) from None
    release.state = ReleaseState.rolling_out
    ctx.session.add(release)
    detail = f"plan {plan}; {views.wave_label(waves, 0)}: {views.exposure(first)}"
    if blockers:
        detail += "; forced past: " + "; ".join(b.text for b in blockers)
        _record_overrides(
            ctx, blockers, actor=actor, reason=force_reason or "", what=f"{release.version} started"
        )
    audit(ctx, release, "wave.start", actor=actor, reason=force_reason, detail=detail)
    publish_status(ctx, rollout, release)
    post_event(
        ctx,
        rollout,
        f"🚀 {who(actor)} started *{release.version}* (plan {plan}): "
        f"{views.wave_label(waves, 0)} — {views.exposure(first)}, observed for "
        f"{format_duration(first.observe)}.",
    )
    return rollout


# ---------------------------------------------------------------- promote


async def promote_rollout(
    ctx: Context,
    rollout: Rollout,
    *,
    actor: str,
    request: Request | None,
    force_reason: str | None = None,
    expected_wave: int | None = None,
) -> Rollout:
    """Advance one wave (or complete the rollout past the last one).

    `request` None means wavegate itself (auto-promote): no permission check. `expected_wave` is
    the wave a button was posted for; a stale press changes nothing.
    """
    release = release_of(ctx, rollout)
    subject = subject_of(release)
    if rollout.state not in ACTIVE or (
        expected_wave is not None and rollout.wave_index != expected_wave
    ):
        raise _moved_on(ctx, rollout, release)
    waves = plan_of(ctx, rollout)
    index = rollout.wave_index
    wave = waves[index]
    label = views.wave_label(waves, index)
    if request is not None:
        require_promoter(ctx, request, wave, label, subject=subject, force=force_reason is not None)
    blockers = promotion_blockers(ctx, rollout)
    if blockers and force_reason is None:
        raise GateClosed(
            f"cannot promote {release.version} from {label}: "
            + "; ".join(b.text for b in blockers)
            + ". An approver may override with --force REASON.",
            action="wave.promote",
            subject=subject,
        )
    now = ctx.now()
    last = index + 1 >= len(waves)
    if last:
        tiers = sorted({t for w in waves for t in w.tiers}, key=ctx.policy.tiers.index)
        await actuate(
            ctx,
            "promote",
            release,
            rollout,
            wave=None,
            tiers=tiers,
            percent=100,
            actor=actor,
            reason=force_reason or "complete",
        )
        changed = change_rollout(
            rollout,
            session=ctx.session,
            state=RolloutState.complete,
            finished_at=now,
            verdict=Verdict.successful.value,
            pause_kind=None,
            paused_reason=None,
            paused_at=None,
        )
    else:
        onward = waves[index + 1]
        await actuate(
            ctx, "promote", release, rollout, wave=onward, actor=actor, reason=force_reason
        )
        changed = change_rollout(
            rollout,
            session=ctx.session,
            state=RolloutState.running,
            wave_index=index + 1,
            wave_started_at=now,
            verdict=Verdict.running.value,
            ready_at=None,
            pause_kind=None,
            paused_reason=None,
            paused_at=None,
        )
    if not changed:
        raise _moved_on(ctx, rollout, release)
    if last:
        release.state = ReleaseState.complete
        release.completed_at = now
        detail = f"completed after {label}"
        event = (
            f"🏁 {who(actor)} promoted {label}: *{release.version}* is complete and is now the "
            "last known-good release."
        )
    else:
        release.state = ReleaseState.rolling_out
        onward_label = views.wave_label(waves, index + 1)
        detail = f"{label} → {onward_label}: {views.exposure(waves[index + 1])}"
        event = (
            f"⏫ {who(actor)} promoted *{release.version}* to {onward_label} — "
            f"{views.exposure(waves[index + 1])}, observed for "
            f"{format_duration(waves[index + 1].observe)}."
        )
    ctx.session.add(release)
    if force_reason is not None and blockers:
        overridden = "; ".join(b.text for b in blockers)
        detail += f"; forced past: {overridden}"
        event += f"\nForced past: {escape(overridden)}. Reason: {escape(force_reason)}"
        _record_overrides(
            ctx,
            blockers,
            actor=actor,
            reason=force_reason,
            what=f"{release.version} promoted from {label}",
        )
    audit(ctx, release, "wave.promote", actor=actor, reason=force_reason, detail=detail)
    post_event(ctx, rollout, event)
    publish_status(ctx, rollout, release)
    return rollout
