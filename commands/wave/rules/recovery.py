"""Finishing a claim someone else left: what settles each action, and the re-send (DESIGN §10).

A claim left by a crash or a shutdown is taken over (`take_over`), re-sent with its own body and
idempotency key, and settled exactly as its first sender would have (bot/jobs/recovery.py).

A re-sent claim is never released when the send fails: its first sender (another replica,
before a crash) may have reached the deploy system, which then applied it, and releasing would
leave wavegate and the deploy system disagreeing. It stays pending, is sent again with the same
key after a bounded backoff (commands/wave/resend.py), the thread says so once, and /wave
status shows it.
"""

from __future__ import annotations

import json
from datetime import datetime

from commands.announce import announce
from commands.core import Conflict, Context
from commands.ports import ActuatorFailed
from commands.text import escape
from commands.wave.resend import RESEND, Resend, resend_of
from commands.wave.rules.actuation import Claim, idle, note_of
from commands.wave.rules.advance import settle_promotion, settle_start
from commands.wave.rules.pause import Settle, run_queued_pause, settle_pause, settle_resume
from commands.wave.rules.rollback import settle_rollback
from storage.models import Rollout
from storage.rollouts import get_rollout, set_pending_note, take_over_claim

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


def resend_due(rollout: Rollout, now: datetime) -> bool:
    """Whether a claim whose re-send failed before is due to be sent again."""
    resend = resend_of(rollout.pending_note)
    return resend is None or resend.next_at <= now


async def resend(ctx: Context, claim: Claim) -> str:
    """Send the claim again (same body, same key) and settle it; returns what happened."""
    idle(ctx)
    try:
        await ctx.ports.actuator.send(claim.actuation)
    except ActuatorFailed as exc:
        keep_pending(ctx, claim, exc)
        idle(ctx)
        return "kept pending"
    try:
        SETTLERS[claim.action](ctx, claim)
    except Conflict:
        return "settled elsewhere"
    finally:
        await run_queued_pause(ctx, claim.rollout_id)
    return "settled"


def keep_pending(ctx: Context, claim: Claim, failure: ActuatorFailed) -> None:
    """The re-send failed: the claim stays, with when it is sent again; the first failure is
    said in the rollout's thread (a start has none: in the channel)."""
    rollout = get_rollout(claim.rollout_id, session=ctx.session)
    if rollout is None or rollout.pending_key != claim.key:
        return
    note = note_of(rollout)
    resend = Resend.after(resend_of(rollout.pending_note), error=failure.message, now=ctx.now())
    note[RESEND] = resend.as_json()
    if not set_pending_note(rollout, json.dumps(note), key=claim.key, session=ctx.session):
        return
    if resend.failures > 1:
        return
    release = claim.actuation.release
    text = (
        f"⚠️ The deploy system did not confirm the re-sent {claim.action} of {escape(release)} "
        f"({escape(failure.message)}). It may have applied it when it was first sent, so it is "
        "not given up: it stays pending and is sent again with the same idempotency key until "
        "the deploy system answers (`/wave status` shows it)."
    )
    thread = f"rollout:{claim.rollout_id}" if claim.action != "start" else None
    announce(ctx, text, thread_key=thread)
