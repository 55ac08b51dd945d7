"""The poller's guardrails beyond the judge: the health probe before a wave's first poll (a
source that fails it makes the rollout blind) and SLO burn-rate checks (drift pauses as `slo`).

`plan_checks` decides, inside the poller's first transaction, what a rollout needs this cycle;
`run_checks` does the reads with no transaction open; `apply` pauses inside the second one.
Each pause is one transition, posted once: a paused rollout is no longer polled.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from commands.analysis.guardrails import Drift, probe_wave, slo_burns, slo_gate
from commands.analysis.measure import MetricSource, Reading, render_query
from commands.analysis.slo import prom_duration
from commands.core import Conflict, Context
from commands.policy import Metric, Wave
from commands.wave.rules.base import SYSTEM, ActuatorUnavailable, plan_of, release_of
from commands.wave.rules.pause import pause_rollout
from storage.models import PauseKind, Rollout, RolloutState

log = logging.getLogger(__name__)

# SLO burn rates move over minutes; reading 14 queries per rollout every few seconds would only
# load Prometheus.
SLO_EVERY = timedelta(minutes=1)


# Values-only refreshes of status messages, across all rollouts, per minute. Slack rates
# chat.update at Tier 3 (about 50 a minute): with many rollouts, a refresh of each every
# STATUS_REFRESH (commands/wave/rules/posts.py) would be met with 429s, so beyond this budget the
# refreshes take turns. A change of state still publishes at once.
REFRESHES_PER_MINUTE = 40


@dataclass
class RefreshBudget:
    """A token bucket of values-only status refreshes: REFRESHES_PER_MINUTE on the clock."""

    per_minute: float = REFRESHES_PER_MINUTE
    left: float = REFRESHES_PER_MINUTE
    at: datetime | None = None

    def take(self, now: datetime) -> bool:
        if self.at is not None and now > self.at:
            gained = (now - self.at).total_seconds() * self.per_minute / 60
            self.left = min(self.per_minute, self.left + gained)
        if self.at is None or now > self.at:
            self.at = now
        if self.left < 1:
            return False
        self.left -= 1
        return True


@dataclass
class PollMemory:
    """What the poller remembers between cycles, in memory (a new leader probes once more)."""

    # rollout id → (wave index, wave start) last probed: once per wave start or resume.
    probed: dict[int, tuple[int, datetime]] = field(default_factory=dict)
    # rollout id → when its SLO burn rates were last read.
    slo_checked: dict[int, datetime] = field(default_factory=dict)
    refreshes: RefreshBudget = field(default_factory=RefreshBudget)


@dataclass(frozen=True)
class Checks:
    rollout_id: int
    wave_index: int
    wave: Wave
    release: str
    age: timedelta
    probe: bool
    slo: bool


def plan_checks(memory: PollMemory, ctx: Context, rollout: Rollout) -> Checks:
    """What this rollout needs this cycle: a probe before its wave's first poll (after a start,
    a promotion or a resume), SLO burn rates at most every SLO_EVERY."""
    assert rollout.id is not None
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    now = ctx.now()
    probed = memory.probed
    wave_start = (rollout.wave_index, rollout.wave_started_at)
    first = probed.get(rollout.id) != wave_start
    probed[rollout.id] = wave_start
    checked = memory.slo_checked
    last = checked.get(rollout.id)
    slo = bool(ctx.policy.slos) and (last is None or now - last >= SLO_EVERY)
    if slo:
        checked[rollout.id] = now
    return Checks(
        rollout_id=rollout.id,
        wave_index=rollout.wave_index,
        wave=wave,
        release=release_of(ctx, rollout).version,
        age=now - rollout.wave_started_at,
        probe=first,
        slo=slo,
    )


async def run_checks(ctx: Context, checks: Checks) -> Drift | None:
    """The reads; the first guardrail that does not hold, or None.

    An SLO that cannot be read is logged and skipped: the wave's metrics carry the outage (and
    pause as blind after their consecutive errors); a burn rate is never guessed.
    """
    if checks.probe:
        problems = await probe_wave(ctx, checks.wave)
        if problems:
            return Drift(
                "blind",
                "health check",
                "; ".join(problems) + " — the wave cannot be judged without its metrics",
                key=f"probe:{checks.rollout_id}:{checks.wave_index}",
            )
    if checks.slo:
        statuses, problems = await slo_burns(
            ctx, age=checks.age, release=checks.release, wave=checks.wave
        )
        for problem in problems:
            log.warning("SLO not read for %s: %s", checks.release, problem)
        return slo_gate(statuses)
    return None


async def apply(ctx: Context, rollout: Rollout, checks: Checks, drift: Drift) -> bool:
    """Pause a still-running rollout, still in the wave that was checked, for `drift`."""
    if rollout.state != RolloutState.running or rollout.wave_index != checks.wave_index:
        return False
    try:
        await pause_rollout(
            ctx, rollout, kind=PauseKind(drift.kind), reason=drift.reason, actor=SYSTEM
        )
    except ActuatorUnavailable:
        # Left running (the thread says so, once per state); the next cycle tries again.
        return False
    except Conflict:
        return False  # changed under us
    return True


async def check_traffic(
    sources: Mapping[str, MetricSource],
    checks: Checks,
    readings: Sequence[tuple[Metric, Reading]],
) -> list[Reading]:
    """Mark the readings of metrics with a `min_traffic` query that saw too few requests.

    The traffic query is templated like the metric's and read from the same source. A reading
    that already failed is left alone; a traffic query that fails leaves the value standing
    (unknown traffic is not "too little").
    """

    async def one(metric: Metric, reading: Reading) -> Reading:
        rule = metric.min_traffic
        source = sources.get(metric.source)
        if rule is None or source is None or reading.error is not None:
            return reading
        query = render_query(
            rule.query,
            release=checks.release,
            wave=checks.wave.name,
            tiers=list(checks.wave.tiers),
            window=prom_duration(metric.interval),
            age=prom_duration(checks.age),
        )
        traffic = await source.read(query, metric=metric)
        if traffic.error is not None:
            log.warning("min_traffic of %s not read: %s", metric.id, traffic.error)
            return reading
        seen = traffic.value
        if seen is not None and not math.isnan(seen) and seen >= rule.threshold:
            return reading
        shown = "no data" if seen is None or math.isnan(seen) else f"{seen:g}"
        eta = traffic_eta(rule.query, seen, rule.threshold, checks.age, metric.interval)
        return replace(
            reading,
            low_traffic=(
                f"too little traffic to judge: {shown} < {rule.threshold:g}{eta} "
                f"(the traffic query: {query})"
            ),
        )

    return list(await asyncio.gather(*(one(m, r) for m, r in readings)))


def traffic_eta(
    template: str, seen: float | None, threshold: float, age: timedelta, interval: timedelta
) -> str:
    """How long until `threshold` at the current rate: `; needs ~18 more minutes at 40 req/min`.

    A query over the wave's age ({age}) counts up as the wave runs; one over a fixed window
    ({window}, the interval) only reaches the threshold if the rate itself grows.
    """
    if seen is None or math.isnan(seen) or seen <= 0:
        return "; no traffic yet, so no estimate"
    over_age = "{age}" in template
    span = age if over_age else interval
    minutes = max(span.total_seconds() / 60, 1 / 60)
    rate = seen / minutes
    if not over_age:
        return f" ({rate:.3g} req/min; a rate {threshold / seen:.2g}x higher is needed)"
    more = (threshold - seen) / rate
    return f"; needs ~{max(1, round(more))} more minutes at {rate:.3g} req/min"
