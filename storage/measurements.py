"""Measurement queries: one row per poll of one metric in one wave of a rollout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.db import core_connection
from storage.models import (
    Measurement,
    MeasurementSummary,
    MeasurementTally,
    Rollout,
    RolloutState,
)
from storage.types import UtcDateTime


def add_measurement(
    *,
    rollout_id: int,
    wave_index: int,
    metric: str,
    phase: str,
    value: float | None,
    detail: str,
    at: datetime,
    session: Session,
    volume: float | None = None,
) -> None:
    """Store one poll. A Core insert in the session's transaction: every poll of every rollout
    comes through here, and an ORM add and flush per row cost several times the insert."""
    core_connection(session).execute(
        _INSERT_POLL,
        {
            "rollout_id": rollout_id,
            "wave_index": wave_index,
            "metric": metric,
            "phase": phase,
            "value": value,
            "detail": detail[:4000] or None,
            "taken_at": at,
            "volume": volume,
        },
    )


_INSERT_POLL = sa.insert(Measurement.__table__)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StoredPoll:
    """One stored poll as the judge and the due-poll check read it (a plain row, not an ORM
    object: a wave holds up to a window's worth of polls and they are read on every poll)."""

    metric: str
    phase: str
    value: float | None
    detail: str | None
    taken_at: datetime
    # Units a day for the wave's cohort, read beside a budget metric's value (its `volume`).
    volume: float | None = None


_WAVE_POLLS = (
    sa.select(
        Measurement.__table__.c.metric,  # type: ignore[attr-defined]
        Measurement.__table__.c.phase,  # type: ignore[attr-defined]
        Measurement.__table__.c.value,  # type: ignore[attr-defined]
        Measurement.__table__.c.detail,  # type: ignore[attr-defined]
        Measurement.__table__.c.taken_at,  # type: ignore[attr-defined]
        Measurement.__table__.c.volume,  # type: ignore[attr-defined]
    )
    .where(
        col(Measurement.rollout_id) == sa.bindparam("rollout_id"),
        col(Measurement.wave_index) == sa.bindparam("wave_index"),
        col(Measurement.taken_at) >= sa.bindparam("since", type_=UtcDateTime),
    )
    .order_by(col(Measurement.taken_at), col(Measurement.id))
)


def wave_measurements(
    rollout_id: int, wave_index: int, *, since: datetime, session: Session
) -> dict[str, list[StoredPoll]]:
    """The polls of one wave taken since `since` (the wave's start or its last resume), by
    metric, oldest first."""
    params = {"rollout_id": rollout_id, "wave_index": wave_index, "since": since}
    by_metric: dict[str, list[StoredPoll]] = {}
    for metric, phase, value, detail, taken_at, volume in core_connection(session).execute(
        _WAVE_POLLS, params
    ):
        by_metric.setdefault(metric, []).append(
            StoredPoll(metric, phase, value, detail, taken_at, volume)
        )
    return by_metric


# ---------------------------------------------------------------- retention (summaries)


@dataclass(frozen=True)
class WaveMetric:
    """The key of one summary: one metric of one wave of one rollout."""

    rollout_id: int
    wave_index: int
    metric: str


@dataclass(frozen=True)
class RawPoll:
    phase: str
    value: float | None
    taken_at: datetime


@dataclass(frozen=True)
class RawTally:
    """What `/wave history` shows of a wave whose polls are still raw: counted in the database."""

    key: WaveMetric
    polls: int
    by_phase: dict[str, int]
    min: float | None
    max: float | None
    mean: float | None


_M = Measurement.__table__  # type: ignore[attr-defined]
_R = Rollout.__table__  # type: ignore[attr-defined]
_T = MeasurementTally.__table__  # type: ignore[attr-defined]
# A wave is active while it is the current wave of a running or paused rollout.
_IN_ACTIVE_WAVE = sa.and_(
    sa.or_(*(_R.c.state == state for state in (RolloutState.running, RolloutState.paused))),
    _R.c.wave_index == _M.c.wave_index,
)


def stale_wave_metrics(*, before: datetime, limit: int, session: Session) -> list[WaveMetric]:
    """Up to `limit` metrics of waves that are not active and whose newest raw poll was taken
    before `before`: ready to be rolled up whole."""
    query = (
        sa.select(_M.c.rollout_id, _M.c.wave_index, _M.c.metric)
        .join(_R, _R.c.id == _M.c.rollout_id)
        .where(sa.not_(_IN_ACTIVE_WAVE))
        .group_by(_M.c.rollout_id, _M.c.wave_index, _M.c.metric)
        .having(sa.func.max(_M.c.taken_at) < before)
        .order_by(_M.c.rollout_id, _M.c.wave_index, _M.c.metric)
        .limit(limit)
    )
    rows = core_connection(session).execute(query)
    return [WaveMetric(int(r), int(w), str(m)) for r, w, m in rows]


def _of(key: WaveMetric) -> sa.ColumnElement[bool]:
    return sa.and_(
        _M.c.rollout_id == key.rollout_id,
        _M.c.wave_index == key.wave_index,
        _M.c.metric == key.metric,
    )


def raw_polls(key: WaveMetric, *, session: Session) -> list[RawPoll]:
    """Every raw poll of one metric of one wave, oldest first."""
    query = sa.select(_M.c.phase, _M.c.value, _M.c.taken_at).where(_of(key))
    query = query.order_by(_M.c.taken_at, _M.c.id)
    return [RawPoll(p, v, t) for p, v, t in core_connection(session).execute(query)]


def replace_with_summary(summary: MeasurementSummary, *, session: Session) -> int:
    """Store the summary of a wave's metric and delete the raw polls it summarises (and their
    tally: nothing judges a finished wave again), in the caller's transaction. Returns how many
    raw polls were deleted."""
    key = WaveMetric(summary.rollout_id, summary.wave_index, summary.metric)
    session.add(summary)
    session.flush()
    connection = core_connection(session)
    result = connection.execute(sa.delete(_M).where(_of(key)))
    connection.execute(
        sa.delete(_T).where(
            _T.c.rollout_id == key.rollout_id,
            _T.c.wave_index == key.wave_index,
            _T.c.metric == key.metric,
        )
    )
    return int(result.rowcount)


def wave_summaries(rollout_id: int, *, session: Session) -> list[MeasurementSummary]:
    """The summaries of a rollout's rolled-up waves, by wave then metric."""
    query = (
        select(MeasurementSummary)
        .where(MeasurementSummary.rollout_id == rollout_id)
        .order_by(col(MeasurementSummary.wave_index), col(MeasurementSummary.metric))
    )
    return list(session.exec(query))


def raw_tallies(rollout_id: int, *, session: Session) -> list[RawTally]:
    """Per wave and metric of a rollout, what its raw polls add up to (counted by the database,
    so the answer stays quick however many polls a wave has)."""
    query = (
        sa.select(
            _M.c.wave_index,
            _M.c.metric,
            _M.c.phase,
            sa.func.count(),
            sa.func.min(_M.c.value),
            sa.func.max(_M.c.value),
            sa.func.sum(_M.c.value),
            sa.func.count(_M.c.value),
        )
        .where(_M.c.rollout_id == rollout_id)
        .group_by(_M.c.wave_index, _M.c.metric, _M.c.phase)
        .order_by(_M.c.wave_index, _M.c.metric)
    )
    grouped: dict[WaveMetric, list[tuple[str, int, float | None, float | None, float, int]]] = {}
    for wave, metric, phase, polls, low, high, total, valued in core_connection(session).execute(
        query
    ):
        key = WaveMetric(rollout_id, int(wave), str(metric))
        grouped.setdefault(key, []).append(
            (str(phase), int(polls), low, high, float(total or 0.0), int(valued))
        )
    tallies = []
    for key, parts in grouped.items():
        lows = [p[2] for p in parts if p[2] is not None]
        highs = [p[3] for p in parts if p[3] is not None]
        valued = sum(p[5] for p in parts)
        tallies.append(
            RawTally(
                key=key,
                polls=sum(p[1] for p in parts),
                by_phase={p[0]: p[1] for p in parts},
                min=min(lows) if lows else None,
                max=max(highs) if highs else None,
                mean=sum(p[4] for p in parts) / valued if valued else None,
            )
        )
    return tallies
