"""Shared incident rules: keys, the class, commanders, and saying and recording a change.

Every change is a timeline entry and an audit event, and is said in the incident's channel and
in the thread of its announcement in the incidents channel.
"""

from __future__ import annotations

import re

from commands.announce import announce
from commands.core import Block, Context
from commands.incident import views
from commands.policy import IncidentClass
from storage.audit import Outcome, record_event
from storage.incidents import add_timeline_entry
from storage.models import Incident, Release, Rollout

COMMANDERS = "incident-commanders"
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def subject(incident: Incident) -> str:
    return f"incident:{incident.id}"


def guidance_key(incident: Incident) -> str:
    return f"incident:{incident.id}:guidance"


def announcement_key(incident: Incident) -> str:
    return f"incident:{incident.id}:announcement"


def class_of(ctx: Context, incident: Incident) -> IncidentClass:
    """The incident's class; one removed from the policy since is shown by its id."""
    found = ctx.policy.incidents.get(incident.incident_class)
    if found is not None:
        return found
    return IncidentClass(
        title=incident.incident_class, severity=incident.severity, first_action="-"
    )


def commanders(ctx: Context) -> list[str]:
    """The incident commanders who can be invited (users, not user groups)."""
    return [m for m in ctx.policy.roles.get(COMMANDERS, []) if USER_ID.match(m)]


def tell(ctx: Context, incident: Incident, text: str, *, blocks: list[Block] | None = None) -> None:
    """Say a change in the incident's channel and in its announcement's thread."""
    if incident.channel:
        announce(ctx, text, channel=incident.channel, blocks=blocks)
    if ctx.policy.channels.incidents:
        announce(
            ctx,
            text,
            channel=ctx.policy.channels.incidents,
            thread_key=announcement_key(incident),
        )


def record(
    ctx: Context,
    incident: Incident,
    *,
    actor: str,
    action: str,
    kind: str,
    text: str,
    ref: str | None = None,
    update: bool = True,
) -> None:
    """One change: a timeline entry and an audit event. `update` marks it as a status update,
    which silences the reminder."""
    assert incident.id is not None
    now = ctx.now()
    add_timeline_entry(
        incident.id, actor=actor, kind=kind, text=text, at=now, ref=ref, session=ctx.session
    )
    record_event(
        actor=actor,
        action=action,
        subject=subject(incident),
        outcome=Outcome.ok,
        reason=text,
        at=now,
        session=ctx.session,
    )
    if update:
        incident.last_update_at = now
    ctx.session.add(incident)


def version_of(ctx: Context, rollout: Rollout) -> str:
    release = ctx.session.get(Release, rollout.release_id)
    return release.version if release is not None else f"rollout {rollout.id}"


def announce_incident(ctx: Context, incident: Incident) -> None:
    """The announcement in the incidents channel; posted once, then updated in place."""
    if ctx.policy.channels.incidents:
        announce(
            ctx,
            views.announcement(incident, class_of(ctx, incident)),
            channel=ctx.policy.channels.incidents,
            message_key=announcement_key(incident),
        )
