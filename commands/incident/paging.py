"""Paging: a class or severity pages through a webhook in PagerDuty Events API v2 shape —
trigger on declare, resolve on resolve, one dedup key per incident — queued like the outbox."""

from __future__ import annotations

import json
from typing import Any

from commands.core import Context
from storage.audit import Outcome, record_event
from storage.incident_reach import enqueue_page
from storage.models import Incident

# PagerDuty's severities; sev1 and sev2 are critical.
PD_SEVERITY = {1: "critical", 2: "critical", 3: "error", 4: "warning"}


def dedup_key(incident: Incident) -> str:
    return f"wavegate-incident-{incident.id}"


def event_body(incident: Incident, action: str, *, source: str = "wavegate") -> dict[str, Any]:
    """The Events API v2 body without its routing key (the bot adds it from the environment)."""
    body: dict[str, Any] = {"event_action": action, "dedup_key": dedup_key(incident)}
    if action == "trigger":
        body["payload"] = {
            "summary": f"sev{incident.severity} {incident.incident_class}: {incident.summary}"[
                :1024
            ],
            "source": source,
            "severity": PD_SEVERITY.get(incident.severity, "error"),
            "component": incident.release or "",
            "group": incident.incident_class,
            "class": incident.incident_class,
            "custom_details": {"incident": incident.id, "channel": incident.channel},
        }
    return body


def page(ctx: Context, incident: Incident, action: str) -> bool:
    """Queue a trigger or a resolve when the policy pages this incident; False otherwise."""
    paging = ctx.policy.paging
    if paging is None or incident.id is None:
        return False
    if not paging.pages(incident.incident_class, incident.severity):
        return False
    enqueue_page(
        incident.id,
        action=action,
        dedup_key=dedup_key(incident),
        payload=json.dumps(event_body(incident, action)),
        at=ctx.now(),
        session=ctx.session,
    )
    record_event(
        actor="wavegate",
        action=f"incident.page.{action}",
        subject=f"incident:{incident.id}",
        outcome=Outcome.ok,
        detail=dedup_key(incident),
        at=ctx.now(),
        session=ctx.session,
    )
    return True
