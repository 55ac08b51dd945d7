"""Queries a postmortem and the review read: measurements around an incident, rollbacks, pauses."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import AuditEvent, Measurement, Release, Rollout, RolloutState, TimelineEntry


def measurements_between(
    rollout_ids: list[int], start: datetime, end: datetime, *, session: Session
) -> list[Measurement]:
    if not rollout_ids:
        return []
    query = (
        select(Measurement)
        .where(
            col(Measurement.rollout_id).in_(rollout_ids),
            Measurement.taken_at >= start,
            Measurement.taken_at <= end,
        )
        .order_by(col(Measurement.taken_at), col(Measurement.id))
    )
    return list(session.exec(query))


def rolled_back_between(
    start: datetime, end: datetime, *, session: Session
) -> list[tuple[Rollout, Release]]:
    query = (
        select(Rollout, Release)
        .join(Release, col(Release.id) == col(Rollout.release_id))
        .where(
            Rollout.state == RolloutState.rolled_back,
            col(Rollout.finished_at).is_not(None),
            col(Rollout.finished_at) >= start,
            col(Rollout.finished_at) <= end,
        )
        .order_by(col(Rollout.id))
    )
    return [(r, rel) for r, rel in session.exec(query)]


def audit_between(
    start: datetime, end: datetime, *, session: Session, prefix: str = ""
) -> list[AuditEvent]:
    """Audit events in [start, end) whose action starts with `prefix`, oldest first."""
    query = select(AuditEvent).where(AuditEvent.at >= start, AuditEvent.at < end)
    if prefix:
        query = query.where(col(AuditEvent.action).startswith(prefix))
    return list(session.exec(query.order_by(col(AuditEvent.at), col(AuditEvent.id))))


def releases_created_between(start: datetime, end: datetime, *, session: Session) -> list[Release]:
    query = (
        select(Release)
        .where(Release.created_at >= start, Release.created_at < end)
        .order_by(col(Release.id))
    )
    return list(session.exec(query))


def rollout_of_release(release_id: int, *, session: Session) -> Rollout | None:
    return session.exec(select(Rollout).where(Rollout.release_id == release_id)).first()


def measurements_of(rollout_id: int, *, session: Session) -> list[Measurement]:
    query = (
        select(Measurement)
        .where(Measurement.rollout_id == rollout_id)
        .order_by(col(Measurement.taken_at), col(Measurement.id))
    )
    return list(session.exec(query))


def timeline_of(incident_id: int, *, session: Session) -> list[TimelineEntry]:
    query = (
        select(TimelineEntry)
        .where(TimelineEntry.incident_id == incident_id)
        .order_by(col(TimelineEntry.at), col(TimelineEntry.id))
    )
    return list(session.exec(query))
