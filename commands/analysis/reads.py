"""What one poll of one metric reads: its query (or a comparison's two range queries) and a
budget's volume, through the metric source ports, with no database transaction open."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from commands.analysis.compare import ComparePlan, read_comparison
from commands.analysis.measure import MetricSource, Reading
from commands.policy import Metric

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DuePoll:
    metric: Metric
    query: str
    # A compared metric's two range reads.
    compare: ComparePlan | None = None
    # A budget's volume query, templated.
    volume_query: str | None = None


async def read_due(sources: Mapping[str, MetricSource], due: DuePoll) -> Reading:
    """The poll's Reading; a client that raises is provider trouble, never a crash."""
    metric = due.metric
    source = sources.get(metric.source)
    if source is None:
        return Reading(error=f"no client for source {metric.source!r}")
    try:
        if due.compare is not None:
            return await read_comparison(source, metric, due.compare)
        reading = await source.read(due.query, metric=metric)
        if due.volume_query is not None and reading.error is None:
            reading = await _with_volume(source, metric, due.volume_query, reading)
        return reading
    except Exception as exc:
        log.exception("source %s failed on %s", metric.source, metric.id)
        return Reading(error=f"{type(exc).__name__}: {exc}", detail=due.query)


async def _with_volume(
    source: MetricSource, metric: Metric, query: str, reading: Reading
) -> Reading:
    """A budget's volume beside its value; an unreadable volume only loses the forecast."""
    volume = await source.read(query, metric=metric)
    if volume.error is not None or volume.value is None:
        log.warning("volume of %s not read: %s", metric.id, volume.error or "no data")
        return reading
    return replace(reading, volume=volume.value)
