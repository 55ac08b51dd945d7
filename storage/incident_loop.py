"""Tables of the improvement loop: follow-ups, proof results, incident roles, pages, closures."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import EnumText, UtcDateTime


class FollowUpState(StrEnum):
    open = "open"
    done = "done"
    waived = "waived"


class FollowUp(SQLModel, table=True):
    """Something an incident taught that must be done; may gate the next release's start."""

    __tablename__ = "follow_up"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    text: str = Field(max_length=2000)
    owner: str | None = Field(default=None, max_length=64)
    due: datetime | None = Field(default=None, sa_type=UtcDateTime)
    state: FollowUpState = Field(
        default=FollowUpState.open, sa_type=EnumText(FollowUpState), index=True
    )
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UtcDateTime)
    closed_by: str | None = Field(default=None, max_length=64)
    closed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    reason: str | None = Field(default=None, max_length=2000)
    # The message it was taken from (the "Add as follow-up" shortcut), so it is added once.
    source_ts: str | None = Field(default=None, max_length=40)
    reminded_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ProofResult(SQLModel, table=True):
    """One run of one proof of a first-response path (backup route, last known-good, …)."""

    __tablename__ = "proof_result"

    id: int | None = Field(default=None, primary_key=True)
    proof: str = Field(max_length=64, index=True)
    ok: bool
    detail: str = Field(default="", max_length=2000)
    checked_at: datetime = Field(sa_type=UtcDateTime, index=True)


class IncidentRole(SQLModel, table=True):
    """Who holds a role (communications lead, …) in an incident; the commander is on Incident."""

    __tablename__ = "incident_role"

    incident_id: int = Field(foreign_key="incident.id", primary_key=True)
    role: str = Field(primary_key=True, max_length=32)
    user: str = Field(max_length=64)
    assigned_by: str = Field(max_length=64)
    assigned_at: datetime = Field(sa_type=UtcDateTime)


class PageEvent(SQLModel, table=True):
    """A page to send (PagerDuty Events API v2 shape), queued in the change's transaction and
    delivered by the bot, like the outbox; the dedup key is the same for one incident."""

    __tablename__ = "page_event"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    event_action: str = Field(max_length=16)
    dedup_key: str = Field(max_length=120)
    payload: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(sa_type=UtcDateTime)
    next_attempt_at: datetime = Field(sa_type=UtcDateTime, index=True)
    attempts: int = 0
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime, index=True)
    last_error: str | None = Field(default=None, max_length=2000)


class IncidentClosure(SQLModel, table=True):
    """After resolve: when the channel is archived, and the postmortem link posted before it."""

    __tablename__ = "incident_closure"

    incident_id: int = Field(foreign_key="incident.id", primary_key=True)
    archive_at: datetime = Field(sa_type=UtcDateTime, index=True)
    archived_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    postmortem_link: str | None = Field(default=None, max_length=500)
    last_error: str | None = Field(default=None, max_length=2000)
