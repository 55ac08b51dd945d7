"""Incident queries."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import Incident, IncidentStatus, TimelineEntry


def open_incidents(*, session: Session, max_severity: int = 4) -> list[Incident]:
    """Incidents not yet resolved with severity 1..max_severity (1 is the worst), newest first."""
    query = (
        select(Incident)
        .where(Incident.status != IncidentStatus.resolved, Incident.severity <= max_severity)
        .order_by(col(Incident.declared_at).desc(), col(Incident.id).desc())
    )
    return list(session.exec(query))


def add_timeline_entry(
    incident_id: int, *, actor: str, kind: str, text: str, at: datetime, session: Session
) -> TimelineEntry:
    entry = TimelineEntry(incident_id=incident_id, actor=actor, kind=kind, text=text[:4000], at=at)
    session.add(entry)
    session.flush()
    return entry
