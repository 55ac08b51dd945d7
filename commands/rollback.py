"""`/rollback`: roll a release back to the last known-good one, after a confirm step."""

from __future__ import annotations

from commands.access import may, require
from commands.announce import announce
from commands.core import (
    Context,
    Family,
    Invocation,
    NotFound,
    Reply,
    Request,
    UsageError,
)
from commands.text import escape, mention
from commands.wave import views
from commands.wave.parse import pick_rollout
from commands.wave.rules.base import (
    ActuatorUnavailable,
    retry_reply,
    subject_of,
    thread_key,
)
from commands.wave.rules.rollback import rollback_release, rollout_to_roll_back
from storage.audit import Outcome, record_event
from storage.releases import get_release, last_known_good

family = Family("rollback", "roll a release back to the last known-good release", default="")
USAGE = "/rollback [RELEASE] REASON"


def rollback_confirmation(ctx: Context, request: Request, version: str, reason: str) -> Reply:
    """The confirm step: nothing happens until someone with the permission presses the button."""
    release = get_release(version, session=ctx.session)
    if release is None:
        raise NotFound(f"no release {version!r} is registered", usage=USAGE)
    subject = subject_of(release)
    reason = reason.strip()
    if not reason:
        raise UsageError("say why you roll back (the reason is audited)", usage=USAGE)
    two_person = not may(ctx.policy, "rollback", request)
    if two_person:
        # Anyone holding `rollback.request` asks; someone holding `rollback` confirms.
        require(ctx.policy, "rollback.request", request, subject=subject)
    rollout = rollout_to_roll_back(ctx, release)
    target = last_known_good(session=ctx.session, excluding=release.id)
    where = (
        f"to the last known-good release *{target.version}*"
        if target
        else "with *no last known-good release to return to* (the deploy system removes it)"
    )
    record_event(
        actor=request.user_id,
        action="rollback.requested",
        subject=subject,
        outcome=Outcome.ok,
        reason=reason,
        at=ctx.now(),
        session=ctx.session,
    )
    if two_person:
        asked = (
            f"🙋 {mention(request.user_id)} asks to roll back *{release.version}* {where}. "
            f"Reason: {escape(reason)}\nSomeone allowed to roll back ("
            f"{', '.join(ctx.policy.roles_for('rollback'))}) confirms with the button."
        )
        announce(
            ctx,
            asked,
            blocks=views.confirm_rollback_blocks(asked, release.version, reason),
            thread_key=thread_key(rollout),
        )
        return Reply(
            f"Asked for a rollback of {release.version}: the request is in the thread under "
            f"{release.version}'s status message in the rollouts channel, where someone "
            "allowed to roll back confirms it."
        )
    text = (
        f"Roll back *{release.version}* {where}? Reason: {escape(reason)}\n"
        "Nothing happens until someone allowed to roll back presses *Confirm rollback*."
    )
    return Reply(text, blocks=views.confirm_rollback_blocks(text, release.version, reason))


async def confirm_rollback(ctx: Context, request: Request, version: str, reason: str) -> Reply:
    """The *Confirm rollback* button: check the permission again, then roll back."""
    release = get_release(version, session=ctx.session)
    if release is None:
        raise NotFound(f"no release {version!r} is registered")
    if not reason.strip():
        raise UsageError("a rollback needs a reason", usage=USAGE)
    require(ctx.policy, "rollback", request, subject=subject_of(release))
    retry = {"action_id": views.ROLLBACK_CONFIRM, "value": {"release": version, "reason": reason}}
    try:
        await rollback_release(
            ctx, release, reason=reason.strip(), actor=request.user_id, retry=retry
        )
    except ActuatorUnavailable as err:
        return retry_reply(err)
    target = last_known_good(session=ctx.session, excluding=release.id)
    to = f"to {target.version}" if target else "with no last known-good release to return to"
    return Reply(f"Rolled back {release.version} {to}. Reason: {escape(reason.strip())}")


@family.command("", USAGE)
async def request_rollback(inv: Invocation) -> Reply:
    """Ask to roll back a release (the only active rollout when RELEASE is left out).

    Someone holding `rollback` gets a *Confirm rollback* button; anyone else holding
    `rollback.request` posts the request in the rollout's thread, where someone holding
    `rollback` confirms it (two people). Nothing is rolled back until then.
    """
    words = inv.words
    named = get_release(words[0], session=inv.ctx.session) if words else None
    if named is not None:
        version, rest = named.version, words[1:]
    else:
        target = pick_rollout(inv)
        version, rest = target.release.version, target.rest
    return rollback_confirmation(inv.ctx, inv.request, version, " ".join(rest))
