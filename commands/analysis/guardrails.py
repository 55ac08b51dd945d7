"""Guardrails (DESIGN §4): budgets and SLO burn rates as gates, the error-budget start gate,
the health probe before a wave, and the plain-words explanation of every breach.

Everything here is a pure function of policy, polls and readings, except the few `async`
functions that read through the metric source ports in `ctx.ports.sources`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from commands.analysis.measure import MetricSource, Phase, Poll, Reading
from commands.analysis.slo import BurnStatus, ErrorBudget, measure_budget, measure_burn
from commands.core import Context
from commands.policy import Metric, Policy, Wave
from commands.values import Condition

# How many recent polls an explanation counts: "(3 of last 5 polls)".
RECENT = 5

DriftKind = Literal["budget", "slo", "blind", "misconfigured"]


@dataclass(frozen=True)
class Drift:
    """A guardrail that no longer holds: expansion pauses as `kind` (a PauseKind value)."""

    kind: DriftKind
    subject: str  # the metric or SLO id
    reason: str
    # Stable across polls while the drift lasts, so it is posted once, not once per poll.
    key: str


# ---------------------------------------------------------------- words


def violation(condition: Condition, *, broken_when_holds: bool) -> str:
    """How a value breaks a condition, as a comparison a person reads after the value.

    A success condition `>= 0.97` is broken by `< 0.97`; a failure condition `> 2500` by
    `> 2500` itself; a budget `<= 0.12` by `> 0.12`.
    """
    if broken_when_holds:
        return str(condition)
    negation = {">=": "<", "<=": ">", ">": "<=", "<": ">=", "==": "!=", "!=": "=="}
    if condition.op == "between":
        return f"outside {condition.value:g} to {condition.upper:g}"
    return f"{negation[condition.op]} {condition.value:g}"


def breaking_condition(metric: Metric, value: float) -> tuple[Condition, bool] | None:
    """The condition a value breaks, and whether it breaks it by holding (failure conditions)."""
    if metric.failure is not None and metric.failure.holds(value):
        return metric.failure, True
    if metric.budget is not None and not metric.budget.holds(value):
        return metric.budget, False
    if metric.success is not None and not metric.success.holds(value):
        return metric.success, False
    return None


def _value(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def explain_metric(metric: Metric, polls: Sequence[Poll], *, query: str = "") -> str:
    """Why a metric is not fine, naming it, its last values, the condition and the query:
    `completion_success_rate 0.951 < 0.97 (3 of last 5 polls); last values 0.99, 0.96, …`."""
    recent = list(polls)[-RECENT:]
    valued = [p for p in recent if p.value is not None]
    broken = [
        (p, found)
        for p in valued
        if p.value is not None and (found := breaking_condition(metric, p.value)) is not None
    ]
    unit = f" {metric.unit}" if metric.unit else ""
    if broken:
        poll, (condition, by_holding) = broken[-1]
        assert poll.value is not None
        broken_by = violation(condition, broken_when_holds=by_holding)
        what = " budget" if condition is metric.budget else ""
        head = (
            f"{metric.id} {_value(poll.value)}{unit} {broken_by}{what}"
            f" ({len(broken)} of last {len(recent)} polls)"
        )
    elif recent and all(p.phase == Phase.error for p in recent):
        head = f"{metric.id}: no data — the last {len(recent)} polls failed: {recent[-1].detail}"
    elif recent:
        counts = {phase: sum(p.phase == phase for p in recent) for phase in Phase}
        shown = ", ".join(f"{n} {phase}" for phase, n in counts.items() if n)
        head = f"{metric.id}: {shown} of last {len(recent)} polls"
    else:
        head = f"{metric.id}: no polls yet"
    parts = [head]
    if valued:
        parts.append(
            "last values " + ", ".join(_value(p.value) for p in valued if p.value is not None)
        )
    if query or metric.query:
        parts.append(f"query: {query or metric.query}")
    return "; ".join(parts)


# ---------------------------------------------------------------- gates


def budget_gate(metric: Metric, polls: Sequence[Poll], *, query: str = "") -> Drift | None:
    """A budget metric drifts once more polls broke its budget than `failure_limit` allows.

    Errors and empty polls are no evidence either way: an unreadable bill is blind, not broke.
    """
    if metric.budget is None:
        return None
    budget = metric.budget
    breaches = [p for p in polls if p.value is not None and not budget.holds(p.value)]
    if len(breaches) <= metric.failure_limit:
        return None
    return Drift(
        "budget",
        metric.id,
        explain_metric(metric, polls, query=query),
        key=f"budget:{metric.id}",
    )


def slo_gate(statuses: Iterable[BurnStatus]) -> Drift | None:
    """The worst firing burn-rate rule among the SLOs, pages before warnings."""
    firing = [s for s in statuses if s.worst is not None]
    if not firing:
        return None
    worst = max(firing, key=lambda s: (s.severity == "page", s.worst.long_burn if s.worst else 0))
    alert = worst.worst
    assert alert is not None
    return Drift(
        "slo",
        worst.slo.id,
        alert.explain(),
        key=f"slo:{worst.slo.id}:{alert.rule.severity}",
    )


def exhausted_budgets(budgets: Iterable[ErrorBudget]) -> list[ErrorBudget]:
    return [b for b in budgets if b.exhausted]


# ---------------------------------------------------------------- reading through the ports


def sources_of(ctx: Context) -> Mapping[str, MetricSource]:
    return ctx.ports.sources


def wave_source_names(policy: Policy, wave: Wave) -> list[str]:
    """The sources a wave's metrics and the policy's SLOs read from, in policy order."""
    wanted = {m.source for m in policy.wave_metrics(wave)} | {s.source for s in policy.slos}
    return [name for name in policy.sources if name in wanted]


async def probe_sources(sources: Mapping[str, Any], names: Iterable[str]) -> dict[str, str]:
    """Run every named source's health probe at once: {source: problem} for those that fail.

    A source without a probe (the demo generator) is taken as healthy; one that is missing from
    `sources` is a problem.
    """
    names = list(names)

    async def one(name: str) -> tuple[str, str | None]:
        source = sources.get(name)
        if source is None:
            return name, f"source {name!r} is not available"
        probe = getattr(source, "probe", None)
        if probe is None:
            return name, None
        reading: Reading = await probe()
        return name, reading.error

    results = await asyncio.gather(*(one(n) for n in names))
    return {name: problem for name, problem in results if problem is not None}


async def probe_wave(ctx: Context, wave: Wave) -> list[str]:
    """The health probe before a wave starts: plain-words problems, empty when every source of
    the wave answers. A non-empty answer makes the rollout blind."""
    failed = await probe_sources(sources_of(ctx), wave_source_names(ctx.policy, wave))
    return [f"metric source {name} failed its health check: {why}" for name, why in failed.items()]


async def error_budgets(ctx: Context, *, release: str) -> tuple[list[ErrorBudget], list[str]]:
    """Every SLO's error budget over its period: (budgets, problems reading them)."""
    sources = sources_of(ctx)
    budgets: list[ErrorBudget] = []
    problems: list[str] = []
    for slo in ctx.policy.slos:
        source = sources.get(slo.source)
        if source is None:
            problems.append(f"{slo.id}: source {slo.source!r} is not available")
            continue
        budget, errors = await measure_budget(slo, source, release=release)
        problems.extend(errors)
        if budget is not None:
            budgets.append(budget)
    return budgets, problems


async def slo_burns(
    ctx: Context, *, age: timedelta | None, release: str, wave: Wave
) -> tuple[list[BurnStatus], list[str]]:
    """Every SLO's burn status for a wave of this age: (statuses, problems reading them)."""
    sources = sources_of(ctx)
    statuses: list[BurnStatus] = []
    problems: list[str] = []
    for slo in ctx.policy.slos:
        source = sources.get(slo.source)
        if source is None:
            problems.append(f"{slo.id}: source {slo.source!r} is not available")
            continue
        status, errors = await measure_burn(
            slo, source, age=age, release=release, wave=wave.name, tiers=wave.tiers
        )
        problems.extend(errors)
        if status is not None:
            statuses.append(status)
    return statuses, problems


async def error_budget_blockers(ctx: Context, *, release: str) -> list[str]:
    """Why a rollout may not start: each SLO whose error budget is exhausted, in plain words.

    An SLO that cannot be read blocks nothing (the health probe catches a dead backend); the
    start gate only refuses on numbers it has.
    """
    budgets, _problems = await error_budgets(ctx, release=release)
    return [
        f"the error budget is exhausted: {budget.explain()}"
        for budget in exhausted_budgets(budgets)
    ]
