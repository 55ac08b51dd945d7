"""Incident roles, pages waiting to be sent, and channel closures after resolve."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.incident_loop import IncidentClosure, IncidentRole, PageEvent


def set_role(
    incident_id: int, role: str, user: str, *, actor: str, at: datetime, session: Session
) -> IncidentRole:
    found = session.get(IncidentRole, (incident_id, role))
    if found is None:
        found = IncidentRole(
            incident_id=incident_id, role=role, user=user, assigned_by=actor, assigned_at=at
        )
    else:
        found.user, found.assigned_by, found.assigned_at = user, actor, at
    session.add(found)
    session.flush()
    return found


def roles_of(incident_id: int, *, session: Session) -> dict[str, str]:
    query = select(IncidentRole).where(IncidentRole.incident_id == incident_id)
    return {row.role: row.user for row in session.exec(query)}


def enqueue_page(
    incident_id: int, *, action: str, dedup_key: str, payload: str, at: datetime, session: Session
) -> PageEvent:
    page = PageEvent(
        incident_id=incident_id,
        event_action=action,
        dedup_key=dedup_key,
        payload=payload,
        created_at=at,
        next_attempt_at=at,
    )
    session.add(page)
    session.flush()
    return page


def due_pages(*, now: datetime, session: Session, limit: int = 50) -> list[PageEvent]:
    """Unsent pages whose attempt is due, in the order they were queued (trigger before
    resolve)."""
    query = (
        select(PageEvent)
        .where(col(PageEvent.sent_at).is_(None), PageEvent.next_attempt_at <= now)
        .order_by(col(PageEvent.id))
        .limit(limit)
    )
    return list(session.exec(query))


def schedule_closure(incident_id: int, *, archive_at: datetime, session: Session) -> None:
    if session.get(IncidentClosure, incident_id) is None:
        session.add(IncidentClosure(incident_id=incident_id, archive_at=archive_at))
        session.flush()


def due_closures(*, now: datetime, session: Session) -> list[IncidentClosure]:
    query = (
        select(IncidentClosure)
        .where(col(IncidentClosure.archived_at).is_(None), IncidentClosure.archive_at <= now)
        .order_by(col(IncidentClosure.archive_at))
    )
    return list(session.exec(query))
