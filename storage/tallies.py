"""Tally queries: one row per metric of one wave of a rollout, what the judge reads of its
polls (storage/models.py `MeasurementTally`), read and written with Core statements in the
caller's transaction, many at once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from storage.db import core_connection
from storage.models import Measurement, MeasurementTally

_T = MeasurementTally.__table__  # type: ignore[attr-defined]
_M = Measurement.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TallyRow:
    """One stored tally, as plain values (the JSON columns are text)."""

    rollout_id: int
    wave_index: int
    metric: str
    since: datetime
    polls: int = 0
    valid: int = 0
    failures: int = 0
    inconclusives: int = 0
    trailing_errors: int = 0
    last_phase: str | None = None
    last_detail: str | None = None
    last_at: datetime | None = None
    judged_phase: str | None = None
    judged_detail: str | None = None
    judged_at: datetime | None = None
    failure_detail: str | None = None
    inconclusive_detail: str | None = None
    failure_at: str = "[]"
    inconclusive_at: str = "[]"
    recent: str = "[]"
    volume: float | None = None


_COLUMNS = [f.name for f in fields(TallyRow)]
_SELECT = sa.select(*(_T.c[name] for name in _COLUMNS))
_BY_WAVE = _SELECT.where(
    _T.c.rollout_id == sa.bindparam("rollout_id"), _T.c.wave_index == sa.bindparam("wave_index")
)
_INSERT = sa.insert(_T)
_UPDATE = (
    sa.update(_T)
    .where(
        _T.c.rollout_id == sa.bindparam("k_rollout"),
        _T.c.wave_index == sa.bindparam("k_wave"),
        _T.c.metric == sa.bindparam("k_metric"),
    )
    .values({name: sa.bindparam(name) for name in _COLUMNS[3:]})
)

WaveKey = tuple[int, int]


def _values(row: TallyRow) -> dict[str, object]:
    return {
        name: getattr(row, name) for name in _COLUMNS
    }  # asdict() would deep-copy  # (rollout id, wave index)


def wave_tallies(rollout_id: int, wave_index: int, *, session: Session) -> dict[str, TallyRow]:
    """The tallies of one wave, by metric."""
    params = {"rollout_id": rollout_id, "wave_index": wave_index}
    rows = core_connection(session).execute(_BY_WAVE, params)
    return {row.metric: TallyRow(*row) for row in rows}


def tallies_of(waves: Iterable[WaveKey], *, session: Session) -> dict[WaveKey, dict[str, TallyRow]]:
    """The tallies of many waves in one query, by wave then metric."""
    wanted = sorted(set(waves))
    found: dict[WaveKey, dict[str, TallyRow]] = {key: {} for key in wanted}
    if not wanted:
        return found
    ids = sorted({rollout_id for rollout_id, _ in wanted})
    query = _SELECT.where(_T.c.rollout_id.in_(ids))
    for row in core_connection(session).execute(query):
        key = (row.rollout_id, row.wave_index)
        if key in found:
            found[key][row.metric] = TallyRow(*row)
    return found


def save_tallies(
    inserted: Sequence[TallyRow], updated: Sequence[TallyRow], *, session: Session
) -> None:
    """Store new tallies and replace existing ones (two statements, each for many rows)."""
    connection = core_connection(session)
    if inserted:
        connection.execute(_INSERT, [_values(row) for row in inserted])
    if updated:
        params = []
        for row in updated:
            values = _values(row)
            values["k_rollout"] = values.pop("rollout_id")
            values["k_wave"] = values.pop("wave_index")
            values["k_metric"] = values.pop("metric")
            params.append(values)
        connection.execute(_UPDATE, params)


def add_measurements(rows: Sequence[dict[str, object]], *, session: Session) -> None:
    """Store many polls in one statement (Measurement columns as keys).

    On PostgreSQL the transaction commits without waiting for its WAL flush: a database crash
    may lose the last fraction of a second of polls (they are simply due again), never a
    reaction to them, since any later commit that waits (every action's) flushes them first.
    """
    if not rows:
        return
    connection = core_connection(session)
    if connection.dialect.name == "postgresql":
        connection.execute(_NO_FLUSH_WAIT)
    connection.execute(_INSERT_POLLS, list(rows))


_INSERT_POLLS = sa.insert(_M)
_NO_FLUSH_WAIT = sa.text("SET LOCAL synchronous_commit TO OFF")
