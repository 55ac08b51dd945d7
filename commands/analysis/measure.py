"""Measurements: what a metric source returns for one poll, and how one poll is classified.

Sources (in `bot/sources/`) fetch; this module decides the phase (DESIGN §4): provider trouble
is `error`; empty or NaN is `inconclusive` unless `on_empty` says otherwise; then failure wins
over success, and neither matching is `inconclusive`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
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
    # The policy field at fault when the source refused the query itself (a PromQL parse error,
    # a JSON path that is not there): `query`, `min_traffic.query`, `compare.baseline`. Such a
    # poll is an error that no retry mends, so the metric is `misconfigured` at once.
    misconfigured: str | None = None
    # A baseline comparison's outcome (successful / failed / inconclusive), when compared.
    outcome: str | None = None
    # A budget's volume (units a day for the wave's cohort), read beside the value.
    volume: float | None = None


class MetricSource(Protocol):
    """A metric backend. `query` is already templated."""

    async def read(self, query: str, *, metric: Metric) -> Reading: ...


# A misconfigured poll's detail starts with this, so the judge tells it from an outage.
MISCONFIGURED = "misconfigured: fix "


@dataclass(frozen=True)
class Poll:
    phase: Phase
    value: float | None
    detail: str
    at: datetime | None = None
    volume: float | None = None

    @property
    def misconfigured(self) -> bool:
        return self.phase == Phase.error and self.detail.startswith(MISCONFIGURED)


def classify(metric: Metric, reading: Reading, *, path: str = "") -> Poll:
    """The phase of one poll, from the metric's conditions. `path` is where the metric is
    written in the policy (`metrics[3]`), named when the source refused the query itself."""
    if reading.error is not None:
        if reading.misconfigured is not None:
            part = reading.misconfigured
            # A source's own field (`sources.billing.path`) is named as it stands.
            field_path = f"{path}.{part}" if path and not part.startswith("sources.") else part
            text = f"{MISCONFIGURED}{field_path}: {reading.error}"
            return Poll(Phase.error, None, _join(text, reading.detail))
        return Poll(Phase.error, None, _join(reading.error, reading.detail))
    value = reading.value
    if reading.low_traffic is not None:
        return Poll(Phase.inconclusive, None, _join(reading.low_traffic, reading.detail))
    if metric.compare is not None and reading.outcome is not None:
        return Poll(Phase(reading.outcome), value, reading.detail, volume=reading.volume)
    if value is None or math.isnan(value):
        phase = Phase(metric.on_empty)
        what = "no samples in the window" if value is None else "no number (NaN)"
        counted = {"inconclusive": "undecided", "failed": "a failure", "successful": "a pass"}
        text = f"{what}, counted as {counted[metric.on_empty]}"
        return Poll(phase, None, _join(text, reading.detail))
    failure = metric.failure is not None and metric.failure.holds(value)
    budget_broken = metric.budget is not None and not metric.budget.holds(value)
    if failure or budget_broken:
        condition = metric.failure if failure else metric.budget
        return Poll(
            Phase.failed,
            value,
            _join(f"{value:g} breaks {condition}", reading.detail),
            volume=reading.volume,
        )
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
    return Poll(Phase.successful, value, reading.detail, volume=reading.volume)


def render_query(
    template: str, *, release: str, wave: str, tiers: list[str], window: str, age: str = ""
) -> str:
    """Plain substitution of exactly {release}, {wave}, {tiers}, {window} (and {age}, the
    wave's age as a PromQL duration, where known): PromQL braces survive."""
    text = (
        template.replace("{release}", release)
        .replace("{wave}", wave)
        .replace("{tiers}", "|".join(tiers))
        .replace("{window}", window)
    )
    return text.replace("{age}", age) if age else text


WARNINGS = "warnings: "


def warnings_in(detail: str) -> str:
    """The source's warnings recorded in a poll's detail ("" when none)."""
    _, found, rest = detail.partition(WARNINGS)
    return rest.split("; query:")[0].strip() if found else ""


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)
