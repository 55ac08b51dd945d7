"""Measurement queries: one row per poll of one metric in one wave of a rollout."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import Measurement


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
) -> Measurement:
    row = Measurement(
        rollout_id=rollout_id,
        wave_index=wave_index,
        metric=metric,
        phase=phase,
        value=value,
        detail=detail[:4000] or None,
        taken_at=at,
    )
    session.add(row)
    session.flush()
    return row


def wave_measurements(
    rollout_id: int, wave_index: int, *, since: datetime, session: Session
) -> dict[str, list[Measurement]]:
    """The polls of one wave taken since `since` (the wave's start or its last resume), by
    metric, oldest first."""
    query = (
        select(Measurement)
        .where(
            Measurement.rollout_id == rollout_id,
            Measurement.wave_index == wave_index,
            col(Measurement.taken_at) >= since,
        )
        .order_by(col(Measurement.taken_at), col(Measurement.id))
    )
    by_metric: dict[str, list[Measurement]] = {}
    for row in session.exec(query):
        by_metric.setdefault(row.metric, []).append(row)
    return by_metric
