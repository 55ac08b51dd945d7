"""Roll back: return a release's rollout to the last known-good release."""

from __future__ import annotations

from commands.core import Conflict, Context
from commands.text import escape
from commands.wave.rules.base import actuate, plan_of, subject_of
from commands.wave.rules.posts import audit, post_event, publish_status, who
from storage.models import Release, ReleaseState, Rollout, RolloutState
from storage.releases import last_known_good
from storage.rollouts import change_rollout, rollout_of


def rollout_to_roll_back(ctx: Context, release: Release) -> Rollout:
    """The release's rollout, unless there is none or it was rolled back already (Conflict)."""
    subject = subject_of(release)
    rollout = rollout_of(release, session=ctx.session)
    if rollout is None:
        raise Conflict(
            f"{release.version} was never rolled out; nothing to roll back",
            action="rollback",
            subject=subject,
        )
    if rollout.state == RolloutState.rolled_back:
        raise Conflict(
            f"{release.version} was already rolled back", action="rollback", subject=subject
        )
    return rollout


async def rollback_release(ctx: Context, release: Release, *, reason: str, actor: str) -> Rollout:
    """Roll back to the last known-good release. The caller checks the `rollback` permission."""
    subject = subject_of(release)
    rollout = rollout_to_roll_back(ctx, release)
    target = last_known_good(session=ctx.session, excluding=release.id)
    waves = plan_of(ctx, rollout)
    wave = waves[rollout.wave_index]
    await actuate(
        ctx,
        "rollback",
        release,
        rollout,
        wave=wave,
        actor=actor,
        reason=reason,
        target=target.version if target else None,
    )
    now = ctx.now()
    if not change_rollout(
        rollout, session=ctx.session, state=RolloutState.rolled_back, finished_at=now
    ):
        raise Conflict(
            f"{release.version} changed just now ({rollout.state}); nothing changed",
            action="rollback",
            subject=subject,
        )
    release.state = ReleaseState.rolled_back
    ctx.session.add(release)
    to = target.version if target else None
    audit(ctx, release, "rollback", actor=actor, reason=reason, detail=f"target {to or 'none'}")
    where = (
        f"to the last known-good release *{to}*"
        if to
        else "with no last known-good release to return to (target null): the deploy system "
        "removes this release without a replacement"
    )
    post_event(
        ctx,
        rollout,
        f"⏪ {who(actor)} rolled back *{release.version}* {where}. Reason: {escape(reason)}",
    )
    publish_status(ctx, rollout, release)
    return rollout
