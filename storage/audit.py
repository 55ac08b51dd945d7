"""The audit trail: every state change and every refused attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import AuditEvent


class Outcome(StrEnum):
    ok = "ok"
    refused = "refused"
    failed = "failed"


def record_event(
    *,
    actor: str,
    action: str,
    subject: str,
    outcome: str,
    at: datetime,
    session: Session,
    reason: str | None = None,
    detail: str | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor=actor,
        action=action,
        subject=subject,
        outcome=outcome,
        at=at,
        reason=reason[:4000] if reason else reason,
        detail=detail[:4000] if detail else detail,
    )
    session.add(event)
    session.flush()
    return event


def events_for(subject: str, *, session: Session, limit: int = 100) -> list[AuditEvent]:
    """Events whose subject is `subject` or starts with `subject:` (e.g. `release:1.2` and
    `release:1.2:rollout`), oldest first."""
    query = (
        select(AuditEvent)
        .where(
            sa.or_(
                col(AuditEvent.subject) == subject,
                col(AuditEvent.subject).startswith(subject + ":"),
            )
        )
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .limit(limit)
    )
    return list(reversed(list(session.exec(query))))


def event_exists(*, action: str, subject: str, detail: str, session: Session) -> bool:
    query = select(AuditEvent.id).where(
        AuditEvent.action == action, AuditEvent.subject == subject, AuditEvent.detail == detail
    )
    return session.exec(query).first() is not None
