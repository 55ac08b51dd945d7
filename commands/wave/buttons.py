"""Button presses on rollout messages: the same rules as the commands, one transaction each.

A button's `value` is JSON naming the release (and, for Promote, the wave it was posted for, so
a stale press changes nothing). Errors are rendered and refusals audited as the dispatcher does.
"""

from __future__ import annotations

import json
from typing import Any

from commands.access import require
from commands.core import Context, NotFound, Reply, Request, UsageError
from commands.rollback import confirm_rollback, rollback_confirmation
from commands.text import said
from commands.unit import perform
from commands.wave import views
from commands.wave.rules.actuation import AUDIT_ACTIONS
from commands.wave.rules.advance import promote_rollout
from commands.wave.rules.base import (
    ActuatorUnavailable,
    plan_of,
    retry_reply,
    subject_of,
)
from commands.wave.rules.pause import pause_rollout, resume_rollout
from commands.wave.rules.posts import publish_status
from storage.audit import Outcome, record_event
from storage.models import PauseKind, Release, Rollout, RolloutState
from storage.releases import get_release
from storage.rollouts import rollout_of

# The audited action of a refused press.
ACTION_PERMISSIONS = {
    views.PROMOTE: AUDIT_ACTIONS["promote"],
    views.PAUSE: AUDIT_ACTIONS["pause"],
    views.RESUME: AUDIT_ACTIONS["resume"],
}

ACTIONS = (
    views.PROMOTE,
    views.PAUSE,
    views.RESUME,
    views.ROLLBACK_REQUEST,
    views.ROLLBACK_CONFIRM,
    views.RETRY,
)


def _payload(value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        raise UsageError("this button carries no readable value") from None
    if not isinstance(data, dict):
        raise UsageError("this button carries no readable value")
    return data


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise UsageError(f"this button does not say which {key}")
    return value


async def _run(action_id: str, data: dict[str, Any], request: Request, ctx: Context) -> Reply:
    if action_id == views.RETRY:
        return await _retry(data, request, ctx)
    version = _text(data, "release")
    if action_id == views.ROLLBACK_REQUEST:
        return rollback_confirmation(ctx, request, version, str(data.get("reason") or ""))
    if action_id == views.ROLLBACK_CONFIRM:
        return await confirm_rollback(ctx, request, version, str(data.get("reason") or ""))
    release = get_release(version, session=ctx.session)
    rollout = rollout_of(release, session=ctx.session) if release is not None else None
    if release is None or rollout is None:
        raise NotFound(f"no rollout of {version!r} exists")
    subject = subject_of(release)
    waves = plan_of(ctx, rollout)
    if _stale(action_id, data, rollout):
        return _refresh_stale(ctx, action_id, rollout, release, request)
    retry = {"action_id": action_id, "value": data}
    try:
        if action_id == views.PROMOTE:
            wave = data.get("wave")
            if not isinstance(wave, int) or isinstance(wave, bool) or not 0 <= wave < 1000:
                raise UsageError("this Promote button does not say which wave")
            before = views.wave_label(waves, wave) if 0 <= wave < len(waves) else f"wave {wave}"
            rollout = await promote_rollout(
                ctx,
                rollout,
                actor=request.user_id,
                request=request,
                expected_wave=wave,
                retry=retry,
            )
            if rollout.state == RolloutState.complete:
                return Reply(f"Promoted {before}: {version} is complete.")
            label = views.wave_label(waves, rollout.wave_index)
            return Reply(f"Promoted {version} to {label}.")
        if action_id == views.PAUSE:
            require(ctx.policy, "wave.pause", request, subject=subject)
            await pause_rollout(
                ctx,
                rollout,
                kind=PauseKind.manual,
                reason="paused from the status message",
                actor=request.user_id,
                retry=retry,
            )
            return Reply(f"Paused {version}.")
        if action_id == views.RESUME:
            require(ctx.policy, "wave.resume", request, subject=subject)
            await resume_rollout(ctx, rollout, actor=request.user_id, retry=retry)
            return Reply(f"Resumed {version}; its wave is observed afresh.")
    except ActuatorUnavailable as err:
        return retry_reply(err)
    raise UsageError(f"unknown button {action_id!r}")


def _refresh_stale(
    ctx: Context, action_id: str, rollout: Rollout, release: Release, request: Request
) -> Reply:
    """The message was out of date: refused (audited) with where the rollout is now, and the
    status message re-published so it shows the truth."""
    waves = plan_of(ctx, rollout)
    version = release.version
    if rollout.state == RolloutState.complete:
        text = f"{version} is already complete; nothing changed"
    elif rollout.state == RolloutState.rolled_back:
        text = f"{version} was already rolled back; nothing changed"
    else:
        where = views.wave_label(waves, rollout.wave_index)
        text = f"{version} is already at {where} ({said(rollout.state)}); nothing changed"
    publish_status(ctx, rollout, release)
    record_event(
        actor=request.user_id,
        action=ACTION_PERMISSIONS.get(action_id, action_id),
        subject=subject_of(release),
        outcome=Outcome.refused,
        reason=text,
        at=ctx.now(),
        session=ctx.session,
    )
    return Reply(
        f"Conflict: {text}. The status message now shows where it is and what can be done.",
        error=True,
        outcome="conflict",
    )


def _stale(action_id: str, data: dict[str, Any], rollout: Rollout) -> bool:
    """A press the rollout has moved past: finished, another wave, or not in the state the
    button was for (a pending action is refused by the rules, saying what is in progress)."""
    state = RolloutState(rollout.state)
    if state in (RolloutState.complete, RolloutState.rolled_back):
        return True
    if action_id == views.PROMOTE:
        wave = data.get("wave")
        if not isinstance(wave, int) or isinstance(wave, bool) or not 0 <= wave < 1000:
            return False  # malformed: the rule says so
        return state != RolloutState.running or wave != rollout.wave_index
    if action_id == views.PAUSE:
        return state != RolloutState.running
    if action_id == views.RESUME:
        return state != RolloutState.paused
    return False


async def _retry(data: dict[str, Any], request: Request, ctx: Context) -> Reply:
    """Run the failed command or button again, as the person pressing Retry (every gate and
    permission is checked again)."""
    if isinstance(data.get("command"), str):
        from commands.router import dispatch  # the router imports this family

        again = Request(
            command=data["command"],
            text=str(data.get("text") or ""),
            user_id=request.user_id,
            user_groups=request.user_groups,
            channel_id=request.channel_id,
        )
        return await dispatch(again, ctx)
    inner = data.get("action_id")
    value = data.get("value")
    if inner in ACTIONS and inner != views.RETRY and isinstance(value, dict):
        return await press(request, ctx, str(inner), json.dumps(value))
    raise UsageError("this Retry button does not say what to retry")


async def press(request: Request, ctx: Context, action_id: str, value: str) -> Reply:
    """One button press as one unit of work, like `commands.router.dispatch` for commands."""

    async def work(ctx: Context) -> Reply:
        return await _run(action_id, _payload(value), request, ctx)

    return await perform(request.user_id, ctx, work, action=action_id)
