"""Incident roles (the communications lead) and stakeholder updates in a fixed, plain format."""

from __future__ import annotations

from commands.access import require
from commands.announce import announce
from commands.core import Conflict, Context, Request, UsageError
from commands.incident.chat import chat_of
from commands.incident.rules import class_of, record, subject, tell
from commands.text import escape, mention
from storage.incident_reach import roles_of, set_role
from storage.models import Incident

ROLES = {"comms": "communications lead"}
STAKEHOLDER_LIMIT = 2000


async def assign_role(
    ctx: Context, incident: Incident, role: str, user: str, *, request: Request
) -> None:
    require(ctx.policy, "incident.role", request, subject=subject(incident))
    assert incident.id is not None
    if roles_of(incident.id, session=ctx.session).get(role) == user:
        raise Conflict(
            f"{mention(user)} is the {ROLES[role]} of #{incident.id} already",
            action="incident.role",
            subject=subject(incident),
        )
    set_role(incident.id, role, user, actor=request.user_id, at=ctx.now(), session=ctx.session)
    record(
        ctx,
        incident,
        actor=request.user_id,
        action="incident.role",
        kind="role",
        text=f"{mention(user)} is the {ROLES[role]}",
    )
    tell(ctx, incident, f"📢 {mention(user)} is the {ROLES[role]} of #{incident.id} now.")
    if incident.channel:
        await chat_of(ctx).invite(incident.channel, [user])


def stakeholder_text(ctx: Context, incident: Incident, text: str) -> str:
    """Plain words, the same fields in the same order every time, so readers outside the
    response can skim it; no mentions, no formatting from whoever typed it."""
    cls = class_of(ctx, incident)
    comms = roles_of(incident.id or 0, session=ctx.session).get("comms")
    lines = [
        f"Incident update — #{incident.id} {escape(cls.title)} (sev{incident.severity})",
        f"Status: {incident.status}",
        f"Impact: {escape(incident.summary)}",
        f"Update: {escape(text)}",
        f"Declared: {incident.declared_at:%Y-%m-%d %H:%M} UTC",
        f"Next update: from {'the communications lead' if comms else 'the incident lead'}",
    ]
    return "\n".join(lines)


def post_stakeholder_update(
    ctx: Context, incident: Incident, text: str, *, request: Request
) -> str:
    require(ctx.policy, "incident.stakeholders", request, subject=subject(incident))
    text = " ".join(text.split())
    if not text:
        raise UsageError("missing TEXT: what should stakeholders know?")
    if len(text) > STAKEHOLDER_LIMIT:
        raise UsageError(f"the update is longer than {STAKEHOLDER_LIMIT} characters")
    target = ctx.policy.stakeholders
    if target is None:
        raise UsageError("the policy names no stakeholder channel (`stakeholders: {channel: C…}`)")
    body = stakeholder_text(ctx, incident, text)
    announce(ctx, body, channel=target.channel)
    record(
        ctx,
        incident,
        actor=request.user_id,
        action="incident.stakeholders",
        kind="stakeholders",
        text=f"Stakeholder update: {text}",
    )
    return target.channel
