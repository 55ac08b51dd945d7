"""Follow-up queries: an incident's follow-ups, the open ones, and those that gate a release."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.incident_loop import FollowUp, FollowUpState
from storage.models import Incident, IncidentStatus


def add_followup(followup: FollowUp, *, session: Session) -> FollowUp:
    session.add(followup)
    session.flush()
    return followup


def get_followup(followup_id: int, *, session: Session) -> FollowUp | None:
    return session.get(FollowUp, followup_id)


def followup_from_message(incident_id: int, ts: str, *, session: Session) -> FollowUp | None:
    query = select(FollowUp).where(FollowUp.incident_id == incident_id, FollowUp.source_ts == ts)
    return session.exec(query).first()


def followups_of(incident_id: int, *, session: Session) -> list[FollowUp]:
    query = select(FollowUp).where(FollowUp.incident_id == incident_id).order_by(col(FollowUp.id))
    return list(session.exec(query))


def open_followups(*, session: Session) -> list[tuple[FollowUp, Incident]]:
    """Every open follow-up with its incident, oldest first."""
    query = (
        select(FollowUp, Incident)
        .join(Incident, col(Incident.id) == col(FollowUp.incident_id))
        .where(FollowUp.state == FollowUpState.open)
        .order_by(col(FollowUp.id))
    )
    return [(f, i) for f, i in session.exec(query)]


def gating_followups(*, session: Session) -> list[tuple[FollowUp, Incident]]:
    """Open follow-ups of resolved incidents (the policy says which classes gate)."""
    return [
        (f, i) for f, i in open_followups(session=session) if i.status == IncidentStatus.resolved
    ]


def followups_created_between(
    start: datetime, end: datetime, *, session: Session
) -> list[FollowUp]:
    query = (
        select(FollowUp)
        .where(FollowUp.created_at >= start, FollowUp.created_at < end)
        .order_by(col(FollowUp.id))
    )
    return list(session.exec(query))
