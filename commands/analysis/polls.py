"""What the poller asks of each metric this cycle (the templated queries, a comparison's
baseline), and the words it leaves behind: dry-run reports and the cost forecast."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session

from commands.analysis.compare import ComparePlan, last_known_good
from commands.analysis.judge import MetricVerdict, Verdict
from commands.analysis.measure import render_query
from commands.analysis.reads import DuePoll
from commands.analysis.slo import prom_duration
from commands.policy import Metric, Wave
from storage.models import Release


def plan_poll(
    metric: Metric,
    *,
    release: Release,
    wave: Wave,
    wave_started_at: datetime,
    now: datetime,
    session: Session,
) -> DuePoll:
    """The metric's queries for this poll, templated; a comparison's over the wave so far."""
    age = now - wave_started_at

    def render(template: str, version: str) -> str:
        return render_query(
            template,
            release=version,
            wave=wave.name,
            tiers=list(wave.tiers),
            window=prom_duration(metric.interval),
            age=prom_duration(age),
        )

    query = render(metric.query, release.version)
    volume = render(metric.volume, release.version) if metric.volume else None
    compare = None
    if metric.compare is not None:
        if metric.compare.explicit:
            baseline_query: str | None = render(metric.compare.baseline, release.version)
            label = "query"
        else:
            good = last_known_good(release, session=session)
            baseline_query = render(metric.query, good.version) if good is not None else None
            label = good.version if good is not None else "none"
        compare = ComparePlan(query, baseline_query, label, start=wave_started_at, end=now)
    return DuePoll(metric, query, compare=compare, volume_query=volume)


# ---------------------------------------------------------------- dry runs

DRY_RUN_WOULD = {
    Verdict.failed: "failed",
    Verdict.error: "been blind (metrics unavailable)",
    Verdict.inconclusive: "been inconclusive",
}


def dry_run_findings(metrics: Sequence[MetricVerdict]) -> list[MetricVerdict]:
    """Dry-run metrics whose verdict would have paused the wave had they counted."""
    return [m for m in metrics if m.metric.dry_run and m.verdict in DRY_RUN_WOULD]


def dry_run_report(mv: MetricVerdict, *, wave_label: str) -> str:
    """One thread post: what would have happened, when, on which values."""
    at = f" at {mv.decided_at:%H:%M} UTC" if mv.decided_at is not None else ""
    values = ", ".join(f"{v:.4g}" for v in mv.values[-5:]) or "none"
    return (
        f"🧪 dry-run: {mv.metric.id} would have {DRY_RUN_WOULD[mv.verdict]} and paused "
        f"{wave_label}{at} — {mv.reason}; last values {values}. It is not counted "
        f"(`dry_run: true`)."
    )


def dry_run_line(mv: MetricVerdict) -> str:
    """The status line's note: `dry-run: would have paused at 14:05`."""
    at = f" at {mv.decided_at:%H:%M}" if mv.decided_at is not None else ""
    return f"dry-run: would have paused{at} ({mv.verdict})"


# ---------------------------------------------------------------- cost forecast


def cost_forecast(mv: MetricVerdict, waves: Sequence[Wave], index: int) -> str:
    """A budget's daily cost now, at the next wave and at 100 %, against the budget:
    `cost: now 5,720/day at 5%; next wave (25%) ~28,600/day; 100% ~114,400/day (budget
    ≤ 0.12 a unit: 124,800/day at 100%)`. Volume is taken to scale with the exposure."""
    metric = mv.metric
    if metric.budget is None or mv.volume is None or mv.latest is None:
        return ""
    here = waves[index].percent
    per_unit = mv.latest
    now = per_unit * mv.volume
    parts = [f"cost {metric.id}: now {_money(now)}/day at {here:g}%"]
    if index + 1 < len(waves):
        nxt = waves[index + 1]
        parts.append(
            f"next wave {nxt.name} ({nxt.percent:g}%) ~{_money(now * nxt.percent / here)}/day"
        )
    full = now * 100 / here
    parts.append(f"100% ~{_money(full)}/day")
    ceiling = metric.budget.upper if metric.budget.upper is not None else metric.budget.value
    limit = ceiling * mv.volume * 100 / here
    verdict = "within" if full <= limit else "over"
    parts.append(f"{verdict} the budget ({metric.budget} a unit: {_money(limit)}/day at 100%)")
    return "; ".join(parts)


def _money(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
