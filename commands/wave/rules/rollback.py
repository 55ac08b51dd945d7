"""Roll back: return a release's rollout to the last known-good release.

Claimed (`claim_rollback`), sent, and settled (`settle_rollback`) as
commands/wave/rules/actuation.py describes; the target is fixed when the claim is made.
"""

from __future__ import annotations

from typing import Any

from commands.core import Conflict, Context
from commands.text import escape
from commands.wave.rules.actuation import (
    Claim,
    actuation_of,
    claim_action,
    new_key,
    refuse_if_pending,
    send,
    settle,
)
from commands.wave.rules.base import plan_of, release_of, subject_of
from commands.wave.rules.posts import audit, post_event, publish_status, who
from storage.models import Release, ReleaseState, Rollout, RolloutState
from storage.releases import last_known_good
from storage.rollouts import rollout_of


def rollout_to_roll_back(ctx: Context, release: Release) -> Rollout:
    """The release's rollout, unless there is none, an action is pending on it, or it was
    rolled back already (Conflict)."""
    subject = subject_of(release)
    rollout = rollout_of(release, session=ctx.session)
    if rollout is None:
        raise Conflict(
            f"{release.version} was never rolled out; nothing to roll back",
            action="rollback",
            subject=subject,
        )
    refuse_if_pending(ctx, rollout, release, action="rollback")
    if rollout.state == RolloutState.rolled_back:
        raise Conflict(
            f"{release.version} was already rolled back", action="rollback", subject=subject
        )
    return rollout


def claim_rollback(
    ctx: Context, release: Release, *, reason: str, actor: str, retry: dict[str, Any] | None
) -> Claim:
    rollout = rollout_to_roll_back(ctx, release)
    target = last_known_good(session=ctx.session, excluding=release.id)
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    actuation = actuation_of(
        "rollback",
        release,
        key=new_key(release, "rollback", rollout),
        actor=actor,
        wave=wave,
        reason=reason,
        target=target.version if target else None,
    )
    return claim_action(
        ctx,
        rollout,
        release,
        actuation,
        state=RolloutState.rolled_back,
        wave_index=rollout.wave_index,
        note={"retry": retry},
    )


def settle_rollback(ctx: Context, claim: Claim) -> Rollout:
    """The deploy system rolled it back to the claim's target."""
    rollout = settle(ctx, claim, state=RolloutState.rolled_back, finished_at=ctx.now())
    release = release_of(ctx, rollout)
    release.state = ReleaseState.rolled_back
    ctx.session.add(release)
    to, actor, reason = claim.actuation.target, claim.actuation.actor, claim.actuation.reason
    audit(ctx, release, "rollback", actor=actor, reason=reason, detail=f"target {to or 'none'}")
    where = (
        f"to the last known-good release *{to}*"
        if to
        else "with no last known-good release to return to: the deploy system removes this "
        "release without a replacement"
    )
    post_event(
        ctx,
        rollout,
        f"⏪ {who(actor)} rolled back *{release.version}* {where}. Reason: {escape(reason)}",
    )
    publish_status(ctx, rollout, release)
    return rollout


async def rollback_release(
    ctx: Context,
    release: Release,
    *,
    reason: str,
    actor: str,
    retry: dict[str, Any] | None = None,
) -> Rollout:
    """Roll back to the last known-good release. The caller checks the `rollback` permission."""
    claim = claim_rollback(ctx, release, reason=reason, actor=actor, retry=retry)
    await send(ctx, claim)
    return settle_rollback(ctx, claim)
