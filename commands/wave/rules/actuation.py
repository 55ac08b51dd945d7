"""The actuation protocol (DESIGN §10): claim an action, send it with nothing held, settle it.

1. **claim** — one short transaction checks the gate, bumps the rollout's version and records
   the pending action (who, why, the idempotency key, the exact webhook body, where success
   moves the rollout), then commits. Only one action may be pending on a rollout: any other
   attempt is refused with who started what and when.
2. **call** — the unit of work's transaction is ended first (`idle`), so no transaction,
   pooled connection or SQLite write lock is held while the deploy system answers.
3. **settle** — one short transaction moves the state (each action's `settle_*` function) or,
   on a final failure, releases the claim, says so in the thread and offers Retry.

Settling reads only the claim's columns, so a leader that finds a claim left by a crash re-sends
the same body with the same key and settles it the same way (bot/jobs/recovery.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from commands.announce import announce
from commands.core import Conflict, Context
from commands.policy import Wave
from commands.ports import Action, Actuation, ActuatorFailed
from commands.text import escape, mention, span
from commands.wave import views
from commands.wave.rules.base import SYSTEM, ActuatorUnavailable, subject_of
from commands.wave.rules.posts import publish_status
from storage.audit import Outcome, event_exists, record_event
from storage.models import Release, Rollout, RolloutState
from storage.rollouts import claim_rollout, drop_start_claim, get_rollout, settle_claim

AUDIT_ACTIONS: dict[str, str] = {
    "start": "wave.start",
    "promote": "wave.promote",
    "pause": "wave.pause",
    "resume": "wave.resume",
    "rollback": "rollback",
}


@dataclass(frozen=True)
class Claim:
    """A pending action as recorded: enough to send it (again) and to settle it."""

    rollout_id: int
    action: Action
    key: str
    owner: str
    actuation: Actuation

    @classmethod
    def of(cls, rollout: Rollout) -> Claim:
        """The claim recorded on a rollout (recovery rebuilds it from the row)."""
        assert rollout.id is not None
        assert rollout.pending_body is not None
        assert rollout.pending_key is not None
        actuation = Actuation.from_json(rollout.pending_body)
        return cls(
            rollout.id,
            actuation.action,
            rollout.pending_key,
            rollout.pending_owner or "",
            actuation,
        )


class ActionPending(Conflict):
    """Another action on the rollout is claimed and not settled yet."""

    title = "In progress"


def note_of(rollout: Rollout) -> dict[str, Any]:
    """What settling needs besides the columns (pause kind, gates forced past, Retry)."""
    return dict(json.loads(rollout.pending_note)) if rollout.pending_note else {}


def pending_words(ctx: Context, rollout: Rollout, release: Release) -> str:
    """`a promote of 2026.11.27-1 is in progress, started by <@U…> 4s ago`."""
    since = rollout.pending_since or ctx.now()
    actor = rollout.pending_actor
    who = "wavegate" if actor == SYSTEM else mention(actor)
    return (
        f"a {rollout.pending_action} of {release.version} is in progress, started by {who} "
        f"{span(ctx.now() - since)} ago"
    )


def refuse_if_pending(ctx: Context, rollout: Rollout, release: Release, *, action: str) -> None:
    if rollout.pending_action is not None:
        raise ActionPending(
            f"{pending_words(ctx, rollout, release)}; nothing changed. Try again once it settles.",
            action=AUDIT_ACTIONS.get(action, action),
            subject=subject_of(release),
        )


def actuation_of(
    action: Action,
    release: Release,
    *,
    key: str,
    actor: str,
    wave: Wave | None,
    reason: str | None = None,
    target: str | None = None,
    tiers: list[str] | None = None,
    percent: float | None = None,
) -> Actuation:
    return Actuation(
        action=action,
        release=release.version,
        wave=wave.name if wave is not None else None,
        tiers=tiers if tiers is not None else (list(wave.tiers) if wave else []),
        percent=percent if percent is not None else (wave.percent if wave else None),
        target=target,
        actor=actor,
        reason=reason,
        idempotency_key=key,
    )


def new_key(release: Release, action: str, rollout: Rollout | None) -> str:
    """The same for one action from one state of the rollout, so a Retry after a failure (or a
    re-send after a crash) shares it and the deploy system can drop a duplicate; every settled
    change moves the state, wave or wave start, so nothing else shares it."""
    if rollout is None:
        return f"wavegate:{release.version}:start"  # a release starts at most once
    started = int(rollout.wave_started_at.timestamp() * 1000)
    where = f"r{rollout.id}:{rollout.state}:w{rollout.wave_index}:{started}"
    return f"wavegate:{release.version}:{action}:{where}"


def pending_columns(
    ctx: Context,
    actuation: Actuation,
    *,
    state: RolloutState,
    wave_index: int,
    note: dict[str, Any],
) -> dict[str, Any]:
    return {
        "pending_action": actuation.action,
        "pending_actor": actuation.actor,
        "pending_reason": (actuation.reason or "")[:2000] or None,
        "pending_since": ctx.now(),
        "pending_key": actuation.idempotency_key,
        "pending_owner": ctx.ports.instance,
        "pending_state": state,
        "pending_wave_index": wave_index,
        "pending_target": actuation.target,
        "pending_body": actuation.json(),
        "pending_note": json.dumps(note, separators=(",", ":")),
    }


def claim_action(
    ctx: Context,
    rollout: Rollout,
    release: Release,
    actuation: Actuation,
    *,
    state: RolloutState,
    wave_index: int,
    note: dict[str, Any],
) -> Claim:
    """Record `actuation` as the rollout's pending action (compare-and-set on its version).

    A lost race is refused with what won it: the pending action, or the change it made."""
    assert rollout.id is not None
    columns = pending_columns(ctx, actuation, state=state, wave_index=wave_index, note=note)
    if not claim_rollout(rollout, session=ctx.session, **columns):
        refuse_if_pending(ctx, rollout, release, action=actuation.action)
        raise Conflict(
            f"{release.version} changed just now: {where_now(ctx, rollout)}; nothing changed",
            action=AUDIT_ACTIONS[actuation.action],
            subject=subject_of(release),
        )
    # The status message shows the action in progress and no buttons until it settles.
    publish_status(ctx, rollout, release)
    return Claim(
        rollout.id, actuation.action, actuation.idempotency_key, ctx.ports.instance, actuation
    )


def where_now(ctx: Context, rollout: Rollout) -> str:
    """`it is at wave 2 (free-10) (running)`: where a lost race left the rollout."""
    waves = ctx.policy.plans.get(rollout.plan) or []
    state = str(rollout.state).replace("_", " ")
    if rollout.state in (RolloutState.complete, RolloutState.rolled_back):
        return f"it is {state}"
    if rollout.wave_index < len(waves):
        return f"it is at {views.wave_label(waves, rollout.wave_index)} ({state})"
    return f"it is {state}"


def idle(ctx: Context) -> None:
    """End the unit of work's transaction (committing what it did), so nothing is held while
    the network is awaited: SQLAlchemy's Session returns its connection to the pool here and
    takes one again at its next statement."""
    ctx.session.commit()


async def send(ctx: Context, claim: Claim) -> None:
    """Commit the claim, then call the deploy system with nothing held.

    On a final failure the claim is released in its own short transaction (the rollout stays
    where it was, the thread says so with a Retry button) and ActuatorUnavailable is raised."""
    idle(ctx)
    try:
        await ctx.ports.actuator.send(claim.actuation)
    except ActuatorFailed as exc:
        failure = unconfirmed(claim, exc)
        failure.buttons = release_claim(ctx, claim, failure)
        idle(ctx)
        raise failure from exc


def unconfirmed(claim: Claim, exc: ActuatorFailed) -> ActuatorUnavailable:
    actuation = claim.actuation
    attempts = f"{exc.attempts} attempt{'s' if exc.attempts != 1 else ''}"
    return ActuatorUnavailable(
        f"the deploy system did not confirm {claim.action} of {actuation.release} after "
        f"{attempts}: {exc.message}. Nothing changed.",
        action=AUDIT_ACTIONS[claim.action],
        subject=f"release:{actuation.release}",
        rollout_id=claim.rollout_id if claim.action != "start" else None,
    )


def release_claim(ctx: Context, claim: Claim, failure: ActuatorUnavailable) -> list[Any]:
    """Final failure: the claim goes, the rollout stays where it was (a start's row goes and the
    release stays a candidate), the audit trail and the thread say so; returns the Retry button.
    Nothing is done when the claim was settled or taken over meanwhile."""
    rollout = get_rollout(claim.rollout_id, session=ctx.session)
    if rollout is None or rollout.pending_key != claim.key:
        return []
    ctx.session.refresh(rollout)
    retry = note_of(rollout).get("retry")
    actor = claim.actuation.actor
    # Automatic attempts retry at the next poll: say so once per state of the rollout.
    detail = (
        f"{claim.action}@{rollout.state}:w{rollout.wave_index}:{rollout.wave_started_at.isoformat()}"
        if actor == SYSTEM
        else None
    )
    if claim.action == "start":
        released = drop_start_claim(rollout, key=claim.key, owner=claim.owner, session=ctx.session)
    else:
        released = settle_claim(
            rollout, key=claim.key, owner=claim.owner, session=ctx.session, released=True
        )
    if not released:
        return []
    if claim.action != "start":
        publish_status(ctx, rollout)  # back where it was, with its buttons
    action, subject = failure.action or "wave", failure.subject or "-"
    if detail is not None and event_exists(
        action=action, subject=subject, detail=detail, session=ctx.session
    ):
        return []
    record_event(
        actor=actor,
        action=action,
        subject=subject,
        outcome=Outcome.failed,
        reason=failure.message,
        detail=detail,
        at=ctx.now(),
        session=ctx.session,
    )
    buttons = [views.retry_button(retry)] if isinstance(retry, dict) else []
    # The message carries what the deploy system answered: outside text.
    text = f"⚠️ {escape(failure.message)}"
    thread = f"rollout:{claim.rollout_id}" if claim.action != "start" else None
    announce(ctx, text, blocks=views.with_buttons(text, buttons), thread_key=thread)
    return buttons


def settle(ctx: Context, claim: Claim, **values: Any) -> Rollout:
    """Success: clear the claim and move the rollout (`values`). Conflict when the claim was
    settled or taken over meanwhile (a recovering leader settles it then)."""
    rollout = get_rollout(claim.rollout_id, session=ctx.session)
    if rollout is None or not settle_claim(
        rollout, key=claim.key, owner=claim.owner or None, session=ctx.session, **values
    ):
        raise Conflict(
            f"the {claim.action} of {claim.actuation.release} was taken over by the leader, "
            "which settles it",
            action=AUDIT_ACTIONS[claim.action],
            subject=f"release:{claim.actuation.release}",
        )
    return rollout
