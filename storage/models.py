"""The tables: releases, checks, audit, outbox, rollouts, measurements, incidents, leases, loop."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import EnumText, UtcDateTime


class ReleaseState(StrEnum):
    candidate = "candidate"
    rolling_out = "rolling_out"
    paused = "paused"
    complete = "complete"
    rolled_back = "rolled_back"


class CheckStatus(StrEnum):
    passed = "passed"
    failed = "failed"
    waived = "waived"


class Release(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(max_length=100, sa_column_kwargs={"unique": True}, index=True)
    state: ReleaseState = Field(default=ReleaseState.candidate, sa_type=EnumText(ReleaseState))
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UtcDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class CheckResult(SQLModel, table=True):
    """One recorded result for a checklist item (or one CI check of it); the newest one counts."""

    __tablename__ = "check_result"

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="release.id", index=True)
    item: str = Field(max_length=64)
    # The CI check (lint, test, …) for items verified by CI; empty for the item itself.
    check: str = Field(default="", max_length=64)
    status: CheckStatus = Field(sa_type=EnumText(CheckStatus))
    evidence: str | None = Field(default=None, max_length=2000)
    reason: str | None = Field(default=None, max_length=2000)
    actor: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_type=UtcDateTime)


class AuditEvent(SQLModel, table=True):
    """Every state change and every refused attempt: who, what, on what, why, and the outcome."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UtcDateTime, index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    subject: str = Field(max_length=200, index=True)
    reason: str | None = Field(default=None, max_length=4000)
    outcome: str = Field(max_length=20)
    detail: str | None = Field(default=None, max_length=4000)


class OutboxPost(SQLModel, table=True):
    """A Slack post waiting to be delivered; a crash or a 429 leaves it here to be sent later.

    `message_key` names a message that is updated in place (chat.update once it exists);
    `thread_key` names the message whose thread this post goes into. A post is *claimed* by the
    leader (holder and lease epoch) in a short transaction before it is sent, then marked sent;
    a claim left by a dead or fenced leader is taken again and re-sent with the same
    `client_msg_id`, so a de-duplicating Slack drops the copy. A post Slack refuses for good is
    parked with `dead_at` and never blocks the posts behind it.
    """

    __tablename__ = "outbox_post"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=80)
    text: str
    blocks: str | None = Field(default=None, sa_type=sa.Text)
    message_key: str | None = Field(default=None, max_length=120)
    thread_key: str | None = Field(default=None, max_length=120)
    created_at: datetime = Field(sa_type=UtcDateTime)
    next_attempt_at: datetime = Field(sa_type=UtcDateTime, index=True)
    attempts: int = 0
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime, index=True)
    last_error: str | None = Field(default=None, max_length=2000)
    client_msg_id: str = Field(default_factory=lambda: str(uuid.uuid4()), max_length=40)
    claimed_by: str | None = Field(default=None, max_length=200)
    claim_epoch: int | None = None
    claimed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    dead_at: datetime | None = Field(default=None, sa_type=UtcDateTime)

    # The status message's last version (`last_post_at`, read at every poll of a rollout).
    __table_args__ = (sa.Index("ix_outbox_post_message_key", "message_key", "id"),)


class SlackMessage(SQLModel, table=True):
    """Where a keyed message landed, so it can be updated in place and threaded under."""

    __tablename__ = "slack_message"

    key: str = Field(primary_key=True, max_length=120)
    channel: str = Field(max_length=80)
    ts: str = Field(max_length=40)


class SlackRateLimit(SQLModel, table=True):
    """A Slack method's Retry-After, kept so a new leader honours what the old one was told."""

    __tablename__ = "slack_rate_limit"

    method: str = Field(primary_key=True, max_length=80)
    # Unix seconds on the database's clock (storage/lease.py `db_seconds`).
    until: float


# ---------------------------------------------------------------- rollouts (waves issue)


class RolloutState(StrEnum):
    # A start is claimed but the deploy system has not confirmed it: not active yet, never
    # polled, and the release is still a candidate (DESIGN §10).
    starting = "starting"
    running = "running"
    paused = "paused"
    complete = "complete"
    rolled_back = "rolled_back"


class PauseKind(StrEnum):
    failed = "failed"
    blind = "blind"
    inconclusive = "inconclusive"
    budget = "budget"
    slo = "slo"
    incident = "incident"
    manual = "manual"
    actuator = "actuator"
    # The source refused a query of the policy (a PromQL typo, a JSON path not there).
    misconfigured = "misconfigured"


class Rollout(SQLModel, table=True):
    """A release moving through a plan. `version` is bumped by every change (optimistic lock)."""

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="release.id", sa_column_kwargs={"unique": True})
    plan: str = Field(max_length=64)
    state: RolloutState = Field(
        default=RolloutState.running, sa_type=EnumText(RolloutState), index=True
    )
    wave_index: int = 0
    wave_started_at: datetime = Field(sa_type=UtcDateTime)
    verdict: str = Field(default="running", max_length=20)
    pause_kind: PauseKind | None = Field(default=None, sa_type=EnumText(PauseKind))
    paused_reason: str | None = Field(default=None, max_length=2000)
    paused_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    version: int = 1
    started_by: str = Field(max_length=64)
    started_at: datetime = Field(sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # When the current wave was found ready and its approvers were offered Promote (once a wave).
    ready_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # The action claimed and sent to the deploy system but not settled yet (DESIGN §10): at
    # most one per rollout. Settling reads only these columns, so a leader that finds a claim
    # left by a crash can re-send `pending_body` (same idempotency key) and settle it.
    pending_action: str | None = Field(default=None, max_length=20)
    pending_actor: str | None = Field(default=None, max_length=64)
    pending_reason: str | None = Field(default=None, max_length=2000)
    pending_since: datetime | None = Field(default=None, sa_type=UtcDateTime)
    pending_key: str | None = Field(default=None, max_length=200)
    # The process that sends it; a recovering leader takes the claim over by changing it.
    pending_owner: str | None = Field(default=None, max_length=120)
    # Where success moves the rollout: state, wave index, rollback target version.
    pending_state: RolloutState | None = Field(default=None, sa_type=EnumText(RolloutState))
    pending_wave_index: int | None = None
    pending_target: str | None = Field(default=None, max_length=100)
    # The webhook body exactly as sent (JSON), and what settling needs besides (JSON: pause
    # kind, gates forced past, incidents, the Retry button).
    pending_body: str | None = None
    pending_note: str | None = None
    # An incident's pause that arrived while a promote or resume was pending (JSON): run right
    # after that action settles.
    queued_pause: str | None = None


class Measurement(SQLModel, table=True):
    """One poll of one metric for one wave."""

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id")
    wave_index: int
    metric: str = Field(max_length=64)
    phase: str = Field(max_length=20)
    value: float | None = None
    detail: str | None = Field(default=None, max_length=4000)
    taken_at: datetime = Field(sa_type=UtcDateTime)
    # A budget's volume (units a day for the wave's cohort), for the cost forecast.
    volume: float | None = None

    # The hot reads (a wave's polls since it started, for the judge and the due-poll check) seek
    # one rollout's wave and range over time; the retention job groups by the same prefix.
    __table_args__ = (
        sa.Index("ix_measurement_rollout_wave_taken", "rollout_id", "wave_index", "taken_at"),
    )


class MeasurementSummary(SQLModel, table=True):
    """One metric of one finished wave, rolled up from its raw polls once they passed the
    retention (commands/analysis/retention.py): what `/wave history` and reviews read then.

    The figures are over the polls' finite values; the counts are of polls by phase.
    """

    __tablename__ = "measurement_summary"

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id")
    wave_index: int
    metric: str = Field(max_length=64)
    polls: int
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    # Polls with a finite value; the figures below are over these (None when there were none).
    valued: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    first_at: datetime = Field(sa_type=UtcDateTime)
    last_at: datetime = Field(sa_type=UtcDateTime)
    rolled_up_at: datetime = Field(sa_type=UtcDateTime)

    __table_args__ = (
        sa.UniqueConstraint(
            "rollout_id", "wave_index", "metric", name="uq_measurement_summary_wave_metric"
        ),
    )


class MeasurementTally(SQLModel, table=True):
    """What the judge reads of one metric's polls in one wave of a rollout, kept up to date in
    the transaction that stores each poll (commands/analysis/tally.py), so judging a wave reads
    one row per metric instead of every poll. It counts the polls taken since `since` (the
    wave's start or last resume) and is rebuilt from the raw polls when missing or stale."""

    __tablename__ = "measurement_tally"

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id")
    wave_index: int
    metric: str = Field(max_length=64)
    since: datetime = Field(sa_type=UtcDateTime)
    polls: int = 0
    valid: int = 0
    failures: int = 0
    inconclusives: int = 0
    trailing_errors: int = 0
    # The newest poll, and the newest that is not an error (a comparison's latest result).
    last_phase: str | None = Field(default=None, max_length=20)
    last_detail: str | None = Field(default=None, sa_type=sa.Text)
    last_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    judged_phase: str | None = Field(default=None, max_length=20)
    judged_detail: str | None = Field(default=None, sa_type=sa.Text)
    judged_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    failure_detail: str | None = Field(default=None, sa_type=sa.Text)
    inconclusive_detail: str | None = Field(default=None, sa_type=sa.Text)
    # JSON lists: the first failed / inconclusive polls' times (ISO), the latest values.
    failure_at: str = Field(default="[]", sa_type=sa.Text)
    inconclusive_at: str = Field(default="[]", sa_type=sa.Text)
    recent: str = Field(default="[]", sa_type=sa.Text)
    volume: float | None = None

    __table_args__ = (
        sa.UniqueConstraint("rollout_id", "wave_index", "metric", name="uq_measurement_tally"),
    )


# ---------------------------------------------------------------- incidents (incidents issue)


class IncidentStatus(StrEnum):
    declared = "declared"
    mitigated = "mitigated"
    resolved = "resolved"


class Incident(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    incident_class: str = Field(max_length=64)
    severity: int
    summary: str = Field(max_length=2000)
    status: IncidentStatus = Field(
        default=IncidentStatus.declared, sa_type=EnumText(IncidentStatus), index=True
    )
    commander: str | None = Field(default=None, max_length=64)
    channel: str | None = Field(default=None, max_length=80)
    channel_name: str | None = Field(default=None, max_length=80)
    release: str | None = Field(default=None, max_length=100)
    declared_by: str = Field(max_length=64)
    declared_at: datetime = Field(sa_type=UtcDateTime)
    mitigated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_update_at: datetime = Field(sa_type=UtcDateTime)
    # The last status-update reminder; with last_update_at it says when the next one is due.
    reminded_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # Alertmanager's groupKey, so repeated webhooks update one incident instead of declaring many.
    alert_group_key: str | None = Field(
        default=None, max_length=500, sa_column_kwargs={"unique": True}
    )


class TimelineEntry(SQLModel, table=True):
    """One thing that happened in an incident: who, when, what.

    `ref` names what the entry is about when it may only be recorded once (`step:2` for a
    checklist tick, `message:1700000000.000100` for a pinned message).
    """

    __tablename__ = "timeline_entry"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    at: datetime = Field(sa_type=UtcDateTime)
    actor: str = Field(max_length=64)
    kind: str = Field(max_length=40)
    text: str = Field(max_length=4000)
    ref: str | None = Field(default=None, max_length=120)

    __table_args__ = (sa.UniqueConstraint("incident_id", "ref", name="uq_timeline_entry_ref"),)


class IncidentRollout(SQLModel, table=True):
    """A rollout an incident paused; resolving offers to resume exactly these."""

    __tablename__ = "incident_rollout"

    incident_id: int = Field(foreign_key="incident.id", primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id", primary_key=True)


# ---------------------------------------------------------------- scheduling (metrics issue)


class Lease(SQLModel, table=True):
    """The scheduler leader's lease: one holder at a time, taken over when it expires.

    `expires_at` is unix seconds on the DATABASE's clock, written and compared in SQL, so no
    replica's clock matters. `epoch` is the fencing token: it grows each time the lease changes
    hands (or a restarted holder takes it back), and leader-only writes check it.
    """

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=200)
    expires_at: float
    epoch: int = 1
