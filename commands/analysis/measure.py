"""Measurements: what a metric source returns for one poll, and how one poll is classified.

Sources (in `bot/sources/`) fetch; this module decides the phase (DESIGN §4): provider trouble
is `error`; empty or NaN is `inconclusive` unless `on_empty` says otherwise; then failure wins
over success, and neither matching is `inconclusive`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from commands.policy import Metric


class Phase(StrEnum):
    successful = "successful"
    failed = "failed"
    inconclusive = "inconclusive"
    error = "error"


@dataclass(frozen=True)
class Reading:
    """One raw answer from a source: a value, nothing (empty result), or provider trouble."""

    value: float | None = None
    error: str | None = None
    # The query as sent, the provider's message, warnings: shown to people when a wave pauses.
    detail: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # Set when the metric's `min_traffic` query saw too few requests for the value to mean
    # anything: the poll is inconclusive whatever the value (DESIGN §4).
    low_traffic: str | None = None


class MetricSource(Protocol):
    """A metric backend. `query` is already templated."""

    async def read(self, query: str, *, metric: Metric) -> Reading: ...


@dataclass(frozen=True)
class Poll:
    phase: Phase
    value: float | None
    detail: str


def classify(metric: Metric, reading: Reading) -> Poll:
    """The phase of one poll, from the metric's conditions."""
    if reading.error is not None:
        return Poll(Phase.error, None, _join(reading.error, reading.detail))
    value = reading.value
    if reading.low_traffic is not None:
        return Poll(Phase.inconclusive, None, _join(reading.low_traffic, reading.detail))
    if value is None or math.isnan(value):
        phase = Phase(metric.on_empty)
        what = "no data" if value is None else "NaN"
        return Poll(phase, None, _join(f"{what} (on_empty: {metric.on_empty})", reading.detail))
    failure = metric.failure is not None and metric.failure.holds(value)
    budget_broken = metric.budget is not None and not metric.budget.holds(value)
    if failure or budget_broken:
        condition = metric.failure if failure else metric.budget
        return Poll(Phase.failed, value, _join(f"{value:g} breaks {condition}", reading.detail))
    if metric.success is not None:
        if metric.success.holds(value):
            return Poll(Phase.successful, value, reading.detail)
        if metric.failure is None:
            # Only a success condition: missing it is a failure to meet the objective.
            return Poll(
                Phase.failed, value, _join(f"{value:g} misses {metric.success}", reading.detail)
            )
        return Poll(
            Phase.inconclusive, value, _join(f"{value:g} matches neither condition", reading.detail)
        )
    # A failure or budget condition alone: not breaking it is success.
    return Poll(Phase.successful, value, reading.detail)


def render_query(template: str, *, release: str, wave: str, tiers: list[str], window: str) -> str:
    """Plain substitution of exactly {release}, {wave}, {tiers}, {window}: PromQL braces survive."""
    return (
        template.replace("{release}", release)
        .replace("{wave}", wave)
        .replace("{tiers}", "|".join(tiers))
        .replace("{window}", window)
    )


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)
