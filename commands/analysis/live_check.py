"""`wavegate policy check --live`: every query of the policy run once against its source, each
failure named by the policy field that holds the query."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from datetime import timedelta

from commands.analysis.compare import RangeSource
from commands.analysis.measure import MetricSource, Reading, render_query
from commands.analysis.slo import prom_duration
from commands.policy import Metric, Policy

# What the templates read during a live check: no release is rolling out.
CHECK_RELEASE = "policy-check"


def policy_queries(
    policy: Policy,
    *,
    release: str = CHECK_RELEASE,
    metrics: Collection[str] | None = None,
    slos: bool = True,
) -> list[tuple[str, Metric, str]]:
    """(field path, metric, templated query) for every query the policy sends (or those of
    the named metrics)."""
    found: list[tuple[str, Metric, str]] = []
    tiers = policy.tiers or ["tier"]
    for index, metric in enumerate(policy.metrics):
        if metrics is not None and metric.id not in metrics:
            continue
        here = f"metrics[{index}]"

        def render(template: str, metric: Metric = metric) -> str:
            return render_query(
                template,
                release=release,
                wave="check",
                tiers=list(tiers),
                window=prom_duration(metric.interval),
                age=prom_duration(timedelta(minutes=5)),
            )

        found.append((f"{here}.query", metric, render(metric.query)))
        if metric.min_traffic is not None:
            found.append((f"{here}.min_traffic.query", metric, render(metric.min_traffic.query)))
        if metric.volume is not None:
            found.append((f"{here}.volume", metric, render(metric.volume)))
        if metric.compare is not None and metric.compare.explicit:
            found.append((f"{here}.compare.baseline", metric, render(metric.compare.baseline)))
    for index, slo in enumerate(policy.slos if slos else []):
        as_metric = Metric(id=f"slo-{slo.id}", source=slo.source, success=">= 0")
        for part in ("errors", "total"):
            template = getattr(slo, part)
            query = render_query(
                template, release=release, wave="check", tiers=list(tiers), window="5m"
            )
            found.append((f"slos[{index}].{part}", as_metric, query))
    return found


async def live_problems(
    policy: Policy,
    sources: Mapping[str, MetricSource],
    *,
    queries: list[tuple[str, Metric, str]] | None = None,
    only_misconfigured: bool = False,
) -> list[str]:
    """`metrics[3].query: Prometheus at … answered HTTP 400, bad_data: …` for each failure.

    Empty results are fine (no release is rolling out); a query the source refuses, or a source
    that does not answer, is a problem. A compared metric must be on a source with samples.
    """

    async def one(path: str, metric: Metric, query: str) -> str | None:
        source = sources.get(metric.source)
        if source is None:
            return f"{path}: source {metric.source!r} is not available"
        if metric.compare is not None and not isinstance(source, RangeSource):
            return f"{path}: source {metric.source!r} cannot give samples for a comparison"
        reading: Reading = await source.read(query, metric=metric)
        if reading.error is None or (only_misconfigured and reading.misconfigured is None):
            return None
        field = reading.misconfigured
        if field is not None and field.startswith("sources."):
            path = field
        return f"{path}: {reading.error} ({reading.detail})"

    asked = policy_queries(policy) if queries is None else queries
    results = await asyncio.gather(*(one(*q) for q in asked))
    return [problem for problem in results if problem is not None]
