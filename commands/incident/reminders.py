"""Reminders: an open incident whose updates have gone quiet is reminded in its channel."""

from __future__ import annotations

from commands.announce import announce
from commands.core import Context
from commands.incident.rules import record
from commands.text import mention, span
from storage.incidents import open_incidents
from storage.models import Incident


def remind_due(ctx: Context) -> list[Incident]:
    """Remind each open incident whose last update is older than its severity's cadence.
    Idempotent: a reminder is not repeated until another cadence has passed."""
    now = ctx.now()
    reminded: list[Incident] = []
    for incident in open_incidents(session=ctx.session):
        cadence = ctx.policy.reminders.get(incident.severity)
        if cadence is None or not incident.channel:
            continue
        since = max(incident.last_update_at, incident.reminded_at or incident.last_update_at)
        if now < since + cadence:
            continue
        quiet = span(now - incident.last_update_at)
        incident.reminded_at = now
        record(
            ctx,
            incident,
            actor="wavegate",
            action="incident.reminder",
            kind="reminder",
            text=f"Reminder: no update for {quiet}",
            update=False,
        )
        announce(
            ctx,
            f"⏰ {mention(incident.commander)} no update on #{incident.id} for {quiet} "
            f"(sev{incident.severity} updates are due every {span(cadence)}). "
            "Post one with `/incident status TEXT`.",
            channel=incident.channel,
        )
        reminded.append(incident)
    return reminded
