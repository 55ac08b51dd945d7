"""Baseline comparisons as polls: which release is the baseline, the two range reads, and the
Reading a comparison makes (its outcome, its effect size in words, how long until enough)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlmodel import Session, col, select

from commands.analysis.measure import Reading
from commands.policy import Metric
from commands.values import format_duration
from storage.models import Release, ReleaseState


@dataclass(frozen=True)
class Samples:
    """A range query's samples (oldest first), or the trouble that stopped them being read."""

    values: tuple[float, ...] = ()
    error: str | None = None
    detail: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # The source refused the query itself (see Reading.misconfigured).
    misconfigured: bool = False


@runtime_checkable
class RangeSource(Protocol):
    """A source that gives every sample of a query over a time range (Prometheus)."""

    async def read_range(
        self, query: str, *, start: datetime, end: datetime, step: timedelta
    ) -> Samples: ...


@dataclass(frozen=True)
class ComparePlan:
    """What one comparison poll reads: the cohort's query and the baseline's, over the wave."""

    canary_query: str
    # None: no baseline release is known (nothing has completed yet).
    baseline_query: str | None
    baseline_label: str
    start: datetime
    end: datetime


def last_known_good(release: Release, *, session: Session) -> Release | None:
    """The newest completed release other than this one: the default baseline."""
    statement = (
        select(Release)
        .where(Release.state == ReleaseState.complete, col(Release.id) != release.id)
        .order_by(col(Release.completed_at).desc(), col(Release.id).desc())
        .limit(1)
    )
    return session.exec(statement).first()


def _needs(result_needed: int, step: timedelta) -> str:
    wait = step * result_needed
    return f"~{format_duration(wait)} more at one sample per {format_duration(step)}"


async def read_comparison(source: object, metric: Metric, plan: ComparePlan) -> Reading:
    """Read both sides with `query_range` and judge them (commands/analysis/baseline.py)."""
    compare = metric.compare
    assert compare is not None
    shown = f"query: {plan.canary_query}"
    if not isinstance(source, RangeSource):
        return Reading(
            error=f"source {metric.source!r} cannot give samples over time for a comparison "
            "(use a prometheus source)",
            detail=shown,
            misconfigured="source",
        )
    if plan.baseline_query is None:
        return Reading(
            outcome="inconclusive",
            detail=f"no baseline: no release has completed yet to compare with; {shown}",
        )
    canary, baseline = await asyncio.gather(
        source.read_range(plan.canary_query, start=plan.start, end=plan.end, step=compare.step),
        source.read_range(plan.baseline_query, start=plan.start, end=plan.end, step=compare.step),
    )
    shown = f"{shown}; baseline query: {plan.baseline_query}"
    warnings = canary.warnings + baseline.warnings
    if warnings:
        shown += f"; warnings: {'; '.join(warnings)}"
    for side, got, part in (
        ("canary", canary, "query"),
        ("baseline", baseline, "compare.baseline"),
    ):
        if got.error is not None:
            if part == "compare.baseline" and not compare.explicit:
                part = "query"  # the baseline's query is the metric's own
            return Reading(
                error=f"{side}: {got.error}",
                detail=shown,
                warnings=warnings,
                misconfigured=part if got.misconfigured else None,
            )
    # scipy.stats takes seconds to import: only a comparison pays it, once.
    from commands.analysis.baseline import compare_to_baseline

    result = compare_to_baseline(
        canary.values,
        baseline.values,
        metric=metric.id,
        baseline_label=plan.baseline_label,
        direction=compare.direction,
        tolerance=compare.tolerance,
        confidence=compare.confidence,
        min_samples=compare.min_samples,
    )
    text = result.explain()
    needed = max(result.canary_needed, result.baseline_needed)
    if needed:
        text += f" — {_needs(needed, compare.step)}"
    return Reading(
        value=result.canary_median,
        outcome=result.verdict,
        detail=f"{text}; {shown}",
        warnings=warnings,
    )
