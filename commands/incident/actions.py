"""Incident interactions: the declare form, checklist ticks, Resume buttons and pinned messages.

Like `commands/wave/buttons.py` for rollouts: each is one unit of work with the same rules and
permissions as the commands; a button's value is validated before anything is read.
"""

from __future__ import annotations

import json
from typing import Any

from commands.access import require
from commands.core import CommandError, Context, Reply, Request, UsageError
from commands.incident.declare import declare_incident
from commands.incident.lifecycle import pin_message, resume_paused_rollout, tick_step
from commands.incident.parse import DeclareArgs, parse_form
from commands.incident.views import RESUME_ACTION, RESUME_ALL, TICK_ACTION
from commands.limits import MESSAGE_TEXT, fit_text
from commands.policy import Policy
from commands.text import plural
from commands.unit import perform
from storage.incidents import incident_in_channel, paused_rollouts
from storage.models import RolloutState
from storage.releases import get_release

FORM_FIELDS = ("class", "severity", "summary", "release")


def form_fields(view: dict[str, Any]) -> dict[str, str | None]:
    """The declare form's submitted values, by block id."""
    values: dict[str, Any] = view.get("state", {}).get("values", {})

    def field(block: str) -> str | None:
        element = values.get(block, {}).get("value", {})
        if element.get("selected_option"):
            return str(element["selected_option"].get("value"))
        value = element.get("value")
        return str(value) if value is not None else None

    return {name: field(name) for name in FORM_FIELDS}


def read_form(policy: Policy, view: dict[str, Any]) -> tuple[DeclareArgs | None, dict[str, str]]:
    fields = form_fields(view)
    return parse_form(
        policy,
        incident_class=fields["class"],
        severity=fields["severity"],
        summary=fields["summary"],
        release=fields["release"],
    )


def check_form(ctx: Context, view: dict[str, Any]) -> tuple[DeclareArgs | None, dict[str, str]]:
    """The form's arguments, or an error per field (shown in the form by Slack)."""
    args, errors = read_form(ctx.policy, view)
    if args is not None and args.release and get_release(args.release, session=ctx.session) is None:
        errors["release"] = f"No release {args.release!r} is registered"
    return (None if errors else args), errors


async def declare_from_form(ctx: Context, args: DeclareArgs, request: Request) -> Reply:
    async def work(ctx: Context) -> Reply:
        require(ctx.policy, "incident.declare", request, subject="incident:new")
        incident = await declare_incident(ctx, args, actor=request.user_id)
        return Reply(f"Declared incident #{incident.id} in <#{incident.channel}>.")

    return await perform(request.user_id, ctx, work, action="incident.declare")


UNREADABLE = "this button carries no readable value; run the command instead"


def _id(data: dict[str, Any], key: str) -> int:
    """A row id the button names: a positive integer a database column can hold."""
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
        raise UsageError(UNREADABLE)
    return value


def _value(value: str, *, wants: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except (json.JSONDecodeError, TypeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise UsageError(UNREADABLE)
    _id(data, wants)
    return data


async def press(request: Request, ctx: Context, action_id: str, value: str) -> Reply | None:
    """One press of a guidance step's Done or a resolve summary's Resume. None: the answer is
    the message redrawn in place (a ticked step), nothing to say to the presser."""

    async def work(ctx: Context) -> Reply | None:
        if action_id.startswith(TICK_ACTION):
            data = _value(value, wants="incident")
            tick_step(ctx, _id(data, "incident"), _id(data, "step"), request=request)
            return None
        if action_id == RESUME_ALL:
            data = _value(value, wants="incident")
            return await resume_all(ctx, _id(data, "incident"), request=request)
        if action_id.startswith(RESUME_ACTION):
            data = _value(value, wants="rollout")
            incident_id = _id(data, "incident")
            await resume_paused_rollout(ctx, incident_id, _id(data, "rollout"), request=request)
            return Reply(f"Resumed the rollout paused by incident #{incident_id}.")
        raise UsageError(f"unknown button {action_id[:60]!r}")

    return await perform(request.user_id, ctx, work, action="incident")


async def resume_all(ctx: Context, incident_id: int, *, request: Request) -> Reply:
    """*Resume all* on a resolve summary: each rollout the incident paused and that is still
    paused, resumed through the same rules as its own Resume button (permission, pending
    action, the deploy system); one that cannot be resumed is named, the others go on."""
    require(ctx.policy, "wave.resume", request, subject=f"incident:{incident_id}")
    resumed: list[str] = []
    failed: list[str] = []
    for rollout in paused_rollouts(incident_id, session=ctx.session):
        if rollout.state != RolloutState.paused or rollout.id is None:
            continue
        try:
            done = await resume_paused_rollout(ctx, incident_id, rollout.id, request=request)
        except CommandError as err:
            failed.append(f"rollout {rollout.id}: {err.message}")
            continue
        resumed.append(str(done.id))
    text = f"Resumed {plural(len(resumed), 'rollout')} paused by incident #{incident_id}."
    if failed:
        text += f" Not resumed ({len(failed)}): " + "; ".join(failed[:10])
        if len(failed) > 10:
            text += f" and {len(failed) - 10} more"
    return Reply(fit_text(text, MESSAGE_TEXT))


def is_incident_channel(ctx: Context, channel: str) -> bool:
    return incident_in_channel(channel, session=ctx.session) is not None


async def pin(
    ctx: Context, *, channel: str, ts: str, text: str | None, author: str | None, actor: str
) -> None:
    """A message pinned in an incident channel joins its timeline (once)."""

    async def work(ctx: Context) -> None:
        pin_message(ctx, channel=channel, ts=ts, text=text, author=author, actor=actor)

    await perform(actor, ctx, work, action="incident.pin")
