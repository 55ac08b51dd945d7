"""Finishing a claim someone else left: what settles each action, and the re-send (DESIGN §10).

A claim left by a crash or a shutdown is taken over (`take_over`), re-sent with its own body and
idempotency key, and settled exactly as its first sender would have (bot/jobs/recovery.py).
"""

from __future__ import annotations

from commands.core import Conflict, Context
from commands.wave.rules.actuation import Claim
from commands.wave.rules.advance import settle_promotion, settle_start
from commands.wave.rules.base import ActuatorUnavailable
from commands.wave.rules.pause import Settle, send_and_settle, settle_pause, settle_resume
from commands.wave.rules.rollback import settle_rollback
from storage.models import Rollout
from storage.rollouts import take_over_claim

SETTLERS: dict[str, Settle] = {
    "start": settle_start,
    "promote": settle_promotion,
    "pause": settle_pause,
    "resume": settle_resume,
    "rollback": settle_rollback,
}


def take_over(ctx: Context, rollout: Rollout) -> Claim | None:
    """Make the rollout's pending claim this process's; None when it settled meanwhile."""
    key = rollout.pending_key
    if key is None or rollout.pending_action not in SETTLERS:
        return None
    if not take_over_claim(rollout, key=key, owner=ctx.ports.instance, session=ctx.session):
        return None
    return Claim.of(rollout)


async def resend(ctx: Context, claim: Claim) -> str:
    """Send the claim again (same body, same key) and settle it; returns what happened."""
    try:
        await send_and_settle(ctx, claim, SETTLERS[claim.action])
    except ActuatorUnavailable:
        return "released"  # the thread says so and offers Retry
    except Conflict:
        return "settled elsewhere"
    return "settled"
