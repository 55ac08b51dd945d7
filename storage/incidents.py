"""Incident queries: incidents, their timeline and the rollouts they paused."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from storage.models import Incident, IncidentRollout, IncidentStatus, Rollout, TimelineEntry


class DuplicateEntry(Exception):
    """A timeline entry with this `ref` is already recorded (a second tick, a second pin)."""


def open_incidents(*, session: Session, max_severity: int = 4) -> list[Incident]:
    """Incidents not yet resolved with severity 1..max_severity (1 is the worst), newest first."""
    query = (
        select(Incident)
        .where(Incident.status != IncidentStatus.resolved, Incident.severity <= max_severity)
        .order_by(col(Incident.declared_at).desc(), col(Incident.id).desc())
    )
    return list(session.exec(query))


def list_incidents(*, session: Session, status: str | None = None) -> list[Incident]:
    """Every incident, newest first, optionally only those with `status`."""
    query = select(Incident)
    if status is not None:
        query = query.where(Incident.status == status)
    query = query.order_by(col(Incident.declared_at).desc(), col(Incident.id).desc())
    return list(session.exec(query))


def get_incident(incident_id: int, *, session: Session) -> Incident | None:
    return session.get(Incident, incident_id)


def incident_in_channel(channel: str, *, session: Session) -> Incident | None:
    return session.exec(select(Incident).where(Incident.channel == channel)).first()


def incident_for_alert_group(group_key: str, *, session: Session) -> Incident | None:
    return session.exec(select(Incident).where(Incident.alert_group_key == group_key)).first()


def declared_between(start: datetime, end: datetime, *, session: Session) -> list[Incident]:
    """Incidents declared in [start, end), oldest first."""
    query = (
        select(Incident)
        .where(Incident.declared_at >= start, Incident.declared_at < end)
        .order_by(col(Incident.declared_at), col(Incident.id))
    )
    return list(session.exec(query))


def count_declared_between(start: datetime, end: datetime, *, session: Session) -> int:
    query = select(func.count()).where(Incident.declared_at >= start, Incident.declared_at < end)
    return int(session.exec(query).one())


def add_timeline_entry(
    incident_id: int,
    *,
    actor: str,
    kind: str,
    text: str,
    at: datetime,
    session: Session,
    ref: str | None = None,
) -> TimelineEntry:
    """Record one entry. With `ref`, a second entry about the same thing raises DuplicateEntry
    (the unique constraint decides, so two clicks at once record one)."""
    entry = TimelineEntry(
        incident_id=incident_id, actor=actor, kind=kind, text=text[:4000], at=at, ref=ref
    )
    if ref is None:
        session.add(entry)
        session.flush()
        return entry
    try:
        with session.begin_nested():
            session.add(entry)
            session.flush()
    except sa.exc.IntegrityError:
        raise DuplicateEntry(ref) from None
    return entry


def timeline_refs(incident_id: int, prefix: str, *, session: Session) -> list[TimelineEntry]:
    """Entries whose ref starts with `prefix` (`step:`), oldest first."""
    query = (
        select(TimelineEntry)
        .where(
            TimelineEntry.incident_id == incident_id,
            col(TimelineEntry.ref).startswith(prefix),
        )
        .order_by(col(TimelineEntry.at), col(TimelineEntry.id))
    )
    return list(session.exec(query))


def link_paused_rollout(incident_id: int, rollout_id: int, *, session: Session) -> None:
    if session.get(IncidentRollout, (incident_id, rollout_id)) is None:
        session.add(IncidentRollout(incident_id=incident_id, rollout_id=rollout_id))
        session.flush()


def open_incidents_that_paused(rollout_id: int, *, session: Session) -> list[Incident]:
    """Unresolved incidents that paused this rollout."""
    query = (
        select(Incident)
        .join(IncidentRollout, col(IncidentRollout.incident_id) == col(Incident.id))
        .where(
            IncidentRollout.rollout_id == rollout_id,
            Incident.status != IncidentStatus.resolved,
        )
        .order_by(col(Incident.id))
    )
    return list(session.exec(query))


def paused_rollouts(incident_id: int, *, session: Session) -> list[Rollout]:
    """The rollouts this incident paused, in the order they were started."""
    query = (
        select(Rollout)
        .join(IncidentRollout, col(IncidentRollout.rollout_id) == col(Rollout.id))
        .where(IncidentRollout.incident_id == incident_id)
        .order_by(col(Rollout.id))
    )
    return list(session.exec(query))
