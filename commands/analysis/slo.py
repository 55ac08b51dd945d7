"""SLO burn rates and error budgets (DESIGN §4): pure arithmetic, plus reading the ratios.

An SLO's error budget is the share of requests allowed to fail over its period: 0.1% for 99.9%.
The burn rate is how many times faster than "exactly used up at the end of the period" the
budget is being spent: a 1% error ratio against a 99.9% objective burns at 10x. Multi-window
rules (the SRE workbook's) fire only when both a long and a short window burn above a factor —
the long one proves it matters, the short one that it is still happening:

    page  1h / 5m   at 14.4x     (2% of a 30-day budget in an hour)
    page  6h / 30m  at 6x        (5% in six hours)
    warn  1d / 2h   at 3x        (10% in a day)
    warn  3d / 6h   at 1x        (10% in three days)

A wave younger than a rule's long window is judged over its own age instead: the hours before
the wave say nothing about the release in it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

from commands.analysis.measure import MetricSource, render_query
from commands.policy import Metric, Slo
from commands.values import format_duration

Severity = Literal["page", "warn"]


@dataclass(frozen=True)
class BurnRule:
    severity: Severity
    long: timedelta
    short: timedelta
    factor: float


BURN_RULES: tuple[BurnRule, ...] = (
    BurnRule("page", timedelta(hours=1), timedelta(minutes=5), 14.4),
    BurnRule("page", timedelta(hours=6), timedelta(minutes=30), 6.0),
    BurnRule("warn", timedelta(days=1), timedelta(hours=2), 3.0),
    BurnRule("warn", timedelta(days=3), timedelta(hours=6), 1.0),
)
# Shorter than this, a rate() over a window holds too few scrapes to mean anything.
MIN_WINDOW = timedelta(minutes=1)

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def prom_duration(value: timedelta) -> str:
    """A Prometheus range duration: whole seconds in the largest exact unit (`5m`, `1d`, `90s`).

    PromQL takes no fractions, so a wave 37.4 s old reads `37s`.
    """
    total = max(1, round(value.total_seconds()))
    for unit, size in _UNITS:
        if total % size == 0:
            return f"{total // size}{unit}"
    raise AssertionError(total)  # seconds always divide


def windows_for(rule: BurnRule, age: timedelta | None) -> tuple[timedelta, timedelta]:
    """The rule's (long, short) windows, shortened to the wave's age when it is younger than
    the long window; never below MIN_WINDOW."""
    if age is None or age >= rule.long:
        return rule.long, rule.short
    # Whole seconds, as the query writes it (`[68s]`): the text then says what was asked.
    long = max(MIN_WINDOW, timedelta(seconds=round(age.total_seconds())))
    return long, max(MIN_WINDOW, min(rule.short, long))


def needed_windows(age: timedelta | None) -> list[timedelta]:
    """Every distinct window the rules need for a wave of this age, shortest first."""
    found = {w for rule in BURN_RULES for w in windows_for(rule, age)}
    return sorted(found)


def allowed_error_ratio(slo: Slo) -> float:
    """The error budget as a ratio: 99.9 → 0.001."""
    return 1 - slo.objective / 100


def error_ratio(errors: float | None, total: float | None) -> float | None:
    """errors / total; None when there is no data or no traffic (then nothing burns)."""
    if errors is None or total is None or math.isnan(errors) or math.isnan(total):
        return None
    if total <= 0 or math.isinf(total):
        return None
    return max(0.0, errors) / total


def burn_rate(ratio: float, slo: Slo) -> float:
    return ratio / allowed_error_ratio(slo)


def _rate(value: float) -> str:
    return f"{value:.3g}x" if value < 100 else f"{value:.0f}x"


@dataclass(frozen=True)
class BurnAlert:
    """A rule that fires: both of its windows burn at or above its factor."""

    slo: Slo
    rule: BurnRule
    long: timedelta
    short: timedelta
    long_burn: float
    short_burn: float
    # The long window's queries exactly as sent (templates substituted), where known.
    errors_query: str = ""
    total_query: str = ""

    def explain(self) -> str:
        shortened = " (the wave's age)" if self.long < self.rule.long else ""
        return (
            f"{self.slo.id} burns its error budget at {_rate(self.long_burn)} over "
            f"{prom_duration(self.long)}{shortened} and {_rate(self.short_burn)} over "
            f"{prom_duration(self.short)} ({self.rule.severity}: both ≥ "
            f"{self.rule.factor:g}x; objective {self.slo.objective:g}%). "
            f"errors: {self.errors_query or self.slo.errors} / "
            f"total: {self.total_query or self.slo.total}"
        )


@dataclass(frozen=True)
class BurnStatus:
    slo: Slo
    # The burn rate per window; None where the window had no data or no traffic.
    burns: Mapping[timedelta, float | None]
    alerts: tuple[BurnAlert, ...]

    @property
    def severity(self) -> Severity | None:
        if any(a.rule.severity == "page" for a in self.alerts):
            return "page"
        return "warn" if self.alerts else None

    @property
    def worst(self) -> BurnAlert | None:
        """The firing rule to show: pages before warnings, then the highest long-window burn."""
        if not self.alerts:
            return None
        return max(self.alerts, key=lambda a: (a.rule.severity == "page", a.long_burn))

    def explain(self) -> str:
        if (worst := self.worst) is not None:
            return worst.explain()
        shown = ", ".join(
            f"{format_duration(w)} {_rate(b)}"
            for w, b in sorted(self.burns.items())
            if b is not None
        )
        return f"{self.slo.id} within its error budget (burn: {shown or 'no traffic'})"


def evaluate_burn(
    slo: Slo, ratios: Mapping[timedelta, float | None], *, age: timedelta | None = None
) -> BurnStatus:
    """Apply the multi-window rules to error ratios measured per window.

    A window without data (None) cannot fire a rule: no traffic burns no budget.
    """
    burns = {w: (None if r is None else burn_rate(r, slo)) for w, r in ratios.items()}
    alerts: list[BurnAlert] = []
    for rule in BURN_RULES:
        long, short = windows_for(rule, age)
        long_burn, short_burn = burns.get(long), burns.get(short)
        if long_burn is None or short_burn is None:
            continue
        if long_burn >= rule.factor and short_burn >= rule.factor:
            alerts.append(BurnAlert(slo, rule, long, short, long_burn, short_burn))
    return BurnStatus(slo, burns, tuple(alerts))


@dataclass(frozen=True)
class ErrorBudget:
    """How much of an SLO's error budget its period has used."""

    slo: Slo
    # The error ratio over the whole period; None when there was no traffic or no data.
    ratio: float | None

    @property
    def consumed(self) -> float | None:
        """The share of the budget used: 0.5 is half, 1.2 is 20% over."""
        return None if self.ratio is None else burn_rate(self.ratio, self.slo)

    @property
    def remaining(self) -> float | None:
        return None if self.consumed is None else 1 - self.consumed

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def explain(self) -> str:
        period = format_duration(self.slo.period)
        if self.consumed is None:
            return f"{self.slo.id}: no traffic over {period}, so no error budget used"
        allowed = allowed_error_ratio(self.slo)
        state = "exhausted" if self.exhausted else f"{max(0.0, self.remaining or 0):.0%} left"
        return (
            f"{self.slo.id} has used {self.consumed:.0%} of its {period} error budget ({state}): "
            f"error ratio {self.ratio:.3g} against {allowed:.3g} allowed by "
            f"{self.slo.objective:g}%. errors: {self.slo.errors} / total: {self.slo.total}"
        )


# ---------------------------------------------------------------- reading the ratios


def slo_queries(
    slo: Slo, window: timedelta, *, release: str, wave: str, tiers: Sequence[str]
) -> tuple[str, str]:
    """The SLO's errors and total queries for one window (`{window}` → `5m`)."""

    def render(template: str) -> str:
        return render_query(
            template, release=release, wave=wave, tiers=list(tiers), window=prom_duration(window)
        )

    return render(slo.errors), render(slo.total)


def _as_metric(slo: Slo, part: str, query: str) -> Metric:
    """Sources read on behalf of a metric; an SLO's two queries are read as two plain ones."""
    return Metric(id=f"slo.{slo.id}.{part}", source=slo.source, query=query, success=">= 0")


@dataclass(frozen=True)
class SloReading:
    """Error ratios per window, or the provider trouble that stopped them being read."""

    ratios: Mapping[timedelta, float | None]
    errors: tuple[str, ...] = ()


async def read_ratios(
    slo: Slo,
    source: MetricSource,
    windows: Sequence[timedelta],
    *,
    release: str = "",
    wave: str = "",
    tiers: Sequence[str] = (),
) -> SloReading:
    """Read errors and total for every window at once. Provider trouble is reported, not turned
    into a ratio: an SLO that cannot be read makes a rollout blind, not bad."""

    async def one(window: timedelta) -> tuple[timedelta, float | None, list[str]]:
        errors_q, total_q = slo_queries(slo, window, release=release, wave=wave, tiers=tiers)
        errors, total = await asyncio.gather(
            source.read(errors_q, metric=_as_metric(slo, "errors", errors_q)),
            source.read(total_q, metric=_as_metric(slo, "total", total_q)),
        )
        problems = [
            f"{slo.id} {part} over {prom_duration(window)}: {r.error}"
            for part, r in (("errors", errors), ("total", total))
            if r.error is not None
        ]
        ratio = None if problems else error_ratio(errors.value, total.value)
        return window, ratio, problems

    results = await asyncio.gather(*(one(w) for w in windows))
    problems = tuple(p for _, _, found in results for p in found)
    return SloReading({w: r for w, r, _ in results}, problems)


async def measure_burn(
    slo: Slo,
    source: MetricSource,
    *,
    age: timedelta | None,
    release: str = "",
    wave: str = "",
    tiers: Sequence[str] = (),
) -> tuple[BurnStatus | None, tuple[str, ...]]:
    """(the burn status, ()) or (None, the provider problems)."""
    reading = await read_ratios(
        slo, source, needed_windows(age), release=release, wave=wave, tiers=tiers
    )
    if reading.errors:
        return None, reading.errors
    status = evaluate_burn(slo, reading.ratios, age=age)
    sent = []
    for alert in status.alerts:
        errors_q, total_q = slo_queries(slo, alert.long, release=release, wave=wave, tiers=tiers)
        sent.append(replace(alert, errors_query=errors_q, total_query=total_q))
    return replace(status, alerts=tuple(sent)), ()


async def measure_budget(
    slo: Slo, source: MetricSource, *, release: str = "", wave: str = "", tiers: Sequence[str] = ()
) -> tuple[ErrorBudget | None, tuple[str, ...]]:
    """(the error budget over the SLO's period, ()) or (None, the provider problems)."""
    reading = await read_ratios(slo, source, [slo.period], release=release, wave=wave, tiers=tiers)
    if reading.errors:
        return None, reading.errors
    return ErrorBudget(slo, reading.ratios[slo.period]), ()
