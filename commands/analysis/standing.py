"""Where a wave stands: the tallies of its metrics' polls (commands/analysis/tally.py) as
stored beside the raw polls (storage/tallies.py), read for the judge and folded in as polls are
stored, many rollouts in one statement.

A stored tally counts the polls since the `since` it names; one that is missing (a wave polled
before tallies existed), counts from another `since` (the wave was resumed) or belongs to a
metric whose limits it does not cover is rebuilt from the raw polls, so the tally always judges
as the raw polls do (tests/commands/analysis/test_tally.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session

from commands.analysis.measure import Phase, Poll
from commands.analysis.tally import Tally, covers, tally_of
from commands.analysis.verdicts import polls_of
from commands.policy import Metric
from storage.measurements import StoredPoll, wave_measurements
from storage.tallies import TallyRow, WaveKey, add_measurements, save_tallies, tallies_of
from storage.tallies import wave_tallies as stored_tallies

DETAIL_KEPT = 4000  # the raw poll's detail column


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def to_row(key: WaveKey, metric: str, since: datetime, tally: Tally) -> TallyRow:
    last, judged = tally.last, tally.last_judged
    return TallyRow(
        rollout_id=key[0],
        wave_index=key[1],
        metric=metric,
        since=since,
        polls=tally.polls,
        valid=tally.valid,
        failures=tally.failures,
        inconclusives=tally.inconclusives,
        trailing_errors=tally.trailing_errors,
        last_phase=last.phase.value if last is not None else None,
        last_detail=last.detail if last is not None else None,
        last_at=last.at if last is not None else None,
        judged_phase=judged.phase.value if judged is not None else None,
        judged_detail=judged.detail if judged is not None else None,
        judged_at=judged.at if judged is not None else None,
        failure_detail=tally.last_failure_detail,
        inconclusive_detail=tally.last_inconclusive_detail,
        failure_at=json.dumps([_iso(at) for at in tally.failure_at]),
        inconclusive_at=json.dumps([_iso(at) for at in tally.inconclusive_at]),
        recent=json.dumps(list(tally.values)),
        volume=tally.volume,
    )


def _poll(phase: str | None, detail: str | None, at: datetime | None) -> Poll | None:
    return Poll(Phase(phase), None, detail or "", at=at) if phase is not None else None


def from_row(row: TallyRow) -> Tally:
    return Tally(
        polls=row.polls,
        valid=row.valid,
        failures=row.failures,
        inconclusives=row.inconclusives,
        trailing_errors=row.trailing_errors,
        last=_poll(row.last_phase, row.last_detail, row.last_at),
        last_judged=_poll(row.judged_phase, row.judged_detail, row.judged_at),
        last_failure_detail=row.failure_detail or "",
        last_inconclusive_detail=row.inconclusive_detail or "",
        failure_at=tuple(_when(t) for t in json.loads(row.failure_at)),
        inconclusive_at=tuple(_when(t) for t in json.loads(row.inconclusive_at)),
        values=tuple(float(v) for v in json.loads(row.recent)),
        volume=row.volume,
    )


def wave_standing(
    key: WaveKey,
    since: datetime,
    metrics: Sequence[Metric],
    *,
    session: Session,
    rows: Mapping[str, TallyRow] | None = None,
) -> dict[str, Tally]:
    """metric id → the tally of its polls in the wave since `since`: the stored tallies (`rows`,
    or read here), the raw polls where a stored one does not serve."""
    if rows is None:
        rows = stored_tallies(key[0], key[1], session=session)
    standing: dict[str, Tally] = {}
    rebuild = []
    for metric in metrics:
        row = rows.get(metric.id)
        if row is not None and row.since == since and covers(metric):
            standing[metric.id] = from_row(row)
        else:
            rebuild.append(metric.id)
    if rebuild:
        raw = wave_measurements(key[0], key[1], since=since, session=session)
        for metric_id in rebuild:
            standing[metric_id] = tally_of(polls_of(raw.get(metric_id, [])))
    return standing


@dataclass(frozen=True)
class Taken:
    """The classified polls of one rollout's wave, taken at one time."""

    key: WaveKey
    since: datetime
    at: datetime
    polls: Sequence[tuple[str, Poll]]


def store_polls(batch: Sequence[Taken], *, session: Session) -> dict[WaveKey, dict[str, TallyRow]]:
    """Store every poll of the batch and fold it into its wave's tally: one insert for the
    polls, one read and at most two writes for the tallies, however many rollouts the batch
    holds. Returns the waves' tallies after the batch (by wave, then metric)."""
    stored = tallies_of((taken.key for taken in batch), session=session)
    measurements: list[dict[str, object]] = []
    inserted: dict[tuple[WaveKey, str], TallyRow] = {}
    updated: dict[tuple[WaveKey, str], TallyRow] = {}
    raw: dict[WaveKey, dict[str, list[StoredPoll]]] = {}
    for taken in batch:
        rows = stored[taken.key]
        for metric, poll in taken.polls:
            detail = poll.detail[:DETAIL_KEPT]
            measurements.append(
                {
                    "rollout_id": taken.key[0],
                    "wave_index": taken.key[1],
                    "metric": metric,
                    "phase": poll.phase.value,
                    "value": poll.value,
                    "detail": detail or None,
                    "taken_at": taken.at,
                    "volume": poll.volume,
                }
            )
            row = rows.get(metric)
            if row is not None and row.since == taken.since:
                tally = from_row(row)
            else:  # missing or stale: from the raw polls (read before this batch's insert)
                if taken.key not in raw:
                    raw[taken.key] = wave_measurements(
                        *taken.key, since=taken.since, session=session
                    )
                tally = tally_of(polls_of(raw[taken.key].get(metric, [])))
            stored_poll = Poll(poll.phase, poll.value, detail, at=taken.at, volume=poll.volume)
            new = to_row(taken.key, metric, taken.since, tally.add(stored_poll))
            where = (taken.key, metric)
            if row is None or where in inserted:
                inserted[where] = new
            else:
                updated[where] = new
            rows[metric] = new
    add_measurements(measurements, session=session)
    save_tallies(list(inserted.values()), list(updated.values()), session=session)
    return stored
