"""Checklist items verified by metrics (DESIGN §2), such as observability: an item passes only
when every metric it lists returns data for the release.

wavegate verifies them on a schedule for every open release and records the pass with the
values as evidence; until then the item stays pending and the explanation says which metric
returned nothing and why.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass

from commands.analysis.measure import MetricSource, render_query
from commands.core import Context
from commands.policy import ChecklistItem, Metric, Policy
from commands.ready.checklist import FINISHED, ItemState, evaluate, record_result
from storage.models import CheckStatus, Release
from storage.releases import unfinished_releases

SYSTEM = "wavegate"
# `{window}` in a verification query: recent enough to show the path reports now.
WINDOW = "5m"


@dataclass(frozen=True)
class MetricData:
    metric: str
    value: float | None = None
    problem: str | None = None

    @property
    def has_data(self) -> bool:
        return self.problem is None and self.value is not None


@dataclass(frozen=True)
class Verification:
    release: str
    item: ChecklistItem
    results: tuple[MetricData, ...]

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.has_data for r in self.results)

    def evidence(self) -> str:
        values = ", ".join(f"{r.metric}={r.value:.4g}" for r in self.results if r.value is not None)
        return f"every metric returned data: {values}"

    def explain(self) -> str:
        if self.passed:
            return f"{self.item.id} of {self.release} verified: {self.evidence()}"
        missing = [r for r in self.results if not r.has_data]
        lines = "; ".join(f"{r.metric} {r.problem}" for r in missing)
        return (
            f"{self.item.id} of {self.release} is not verified: {len(missing)} of "
            f"{len(self.results)} metrics returned no data — {lines}"
        )


def metric_items(policy: Policy) -> list[ChecklistItem]:
    return [item for item in policy.checklist if item.verify.by == "metric"]


async def _read(
    metric: Metric | None,
    name: str,
    sources: Mapping[str, MetricSource],
    release: str,
    policy: Policy,
) -> MetricData:
    if metric is None:
        return MetricData(name, problem="is not defined in the policy's metrics")
    source = sources.get(metric.source)
    if source is None:
        return MetricData(name, problem=f"has no client for its source {metric.source!r}")
    query = render_query(
        metric.query, release=release, wave="", tiers=list(policy.tiers), window=WINDOW
    )
    reading = await source.read(query, metric=metric)
    shown = f" (query: {query})" if query else ""
    if reading.error is not None:
        return MetricData(name, problem=f"could not be read: {reading.error}{shown}")
    if reading.value is None:
        return MetricData(name, problem=f"returned no data{shown}")
    if math.isnan(reading.value):
        return MetricData(name, problem=f"returned NaN{shown}")
    return MetricData(name, value=reading.value)


async def verify_item(release: Release, item: ChecklistItem, ctx: Context) -> Verification:
    """Read every metric the item lists, all at once; nothing is recorded here."""
    sources = ctx.ports.sources
    results = await asyncio.gather(
        *(
            _read(ctx.policy.metric(name), name, sources, release.version, ctx.policy)
            for name in item.verify.metrics
        )
    )
    return Verification(release.version, item, tuple(results))


async def verify_and_record(
    release: Release, item: ChecklistItem, ctx: Context, *, actor: str = SYSTEM
) -> Verification:
    """Verify one item now and record the pass when it holds (a person asking, e.g. by
    `/ready check observability`)."""
    verification = await verify_item(release, item, ctx)
    record_verification(verification, release, ctx, actor=actor)
    return verification


def unverified_items(ctx: Context) -> list[tuple[Release, ChecklistItem]]:
    """Metric-verified items of open releases that are not passed (or waived) and fresh: what
    the scheduled verification reads. A passed item is not read again until it expires."""
    items = metric_items(ctx.policy)
    if not items:
        return []
    found: list[tuple[Release, ChecklistItem]] = []
    for release in unfinished_releases(session=ctx.session):
        states = {status.item.id: status.state for status in evaluate(release, ctx).items}
        found += [
            (release, item)
            for item in items
            if states.get(item.id) not in (ItemState.passed, ItemState.waived)
        ]
    return found


def record_verification(
    verification: Verification, release: Release, ctx: Context, *, actor: str = SYSTEM
) -> bool:
    """Record the pass of a verification that holds (the values are its evidence), unless the
    item passed meanwhile; True when recorded."""
    if not verification.passed or release.state in FINISHED:
        return False
    item = verification.item
    state = next((s.state for s in evaluate(release, ctx).items if s.item.id == item.id), None)
    if state in (ItemState.passed, ItemState.waived):
        return False
    record_result(
        release, item, CheckStatus.passed, ctx, actor=actor, evidence=verification.evidence()
    )
    return True
