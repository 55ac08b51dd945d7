"""Measurement retention: a finished wave's raw polls, once past the policy's retention, rolled up.

A wave's polls stay raw while it is the current wave of a running or paused rollout and for
`retention.measurements` (default 14 days) after its last poll; then each of its metrics becomes
one summary row (polls by phase; count, min, max, mean, p50, p95 of the finite values) and the
raw rows go. Rolling a metric up whole, never in parts, keeps every summary exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from commands.analysis.measure import Phase
from commands.core import Context
from storage.measurements import (
    RawPoll,
    WaveMetric,
    raw_polls,
    replace_with_summary,
    stale_wave_metrics,
)
from storage.models import MeasurementSummary

# Metrics rolled up in one transaction: short enough that the job never holds a write for long.
BATCH = 200


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th quantile (0..1) of sorted values, interpolated linearly between the two nearest
    ranks (what `statistics.quantiles(method="inclusive")` and numpy's default give)."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(key: WaveMetric, polls: Sequence[RawPoll], *, now: datetime) -> MeasurementSummary:
    """One summary row for the raw polls of one metric of one wave (at least one poll)."""
    values = sorted(p.value for p in polls if p.value is not None and math.isfinite(p.value))
    by_phase = {phase: 0 for phase in Phase}
    for poll in polls:
        by_phase[Phase(poll.phase)] += 1
    return MeasurementSummary(
        rollout_id=key.rollout_id,
        wave_index=key.wave_index,
        metric=key.metric,
        polls=len(polls),
        successful=by_phase[Phase.successful],
        failed=by_phase[Phase.failed],
        inconclusive=by_phase[Phase.inconclusive],
        error=by_phase[Phase.error],
        valued=len(values),
        min=values[0] if values else None,
        max=values[-1] if values else None,
        mean=math.fsum(values) / len(values) if values else None,
        p50=percentile(values, 0.50) if values else None,
        p95=percentile(values, 0.95) if values else None,
        first_at=min(p.taken_at for p in polls),
        last_at=max(p.taken_at for p in polls),
        rolled_up_at=now,
    )


@dataclass(frozen=True)
class RollUp:
    summaries: int
    deleted: int


def roll_up_measurements(ctx: Context, *, limit: int = BATCH) -> RollUp:
    """Roll up at most `limit` metrics of finished waves whose polls are past the retention.
    Fewer than `limit` summaries means nothing else is due."""
    before = ctx.now() - ctx.policy.retention.measurements
    summaries = deleted = 0
    for key in stale_wave_metrics(before=before, limit=limit, session=ctx.session):
        polls = raw_polls(key, session=ctx.session)
        if not polls:
            continue
        deleted += replace_with_summary(summarize(key, polls, now=ctx.now()), session=ctx.session)
        summaries += 1
    return RollUp(summaries, deleted)
