"""Metric polling of running rollouts on the policy's own clock, the reactions to their
verdicts, and the daily digest.

`poll_loop` (the leader's) sleeps until the next metric of any running rollout is due — each at
its `interval`, errors at `error_retry` — and polls exactly those rollouts; it looks again at
least every `LOOK_EVERY`, so a started or resumed rollout is polled within a second.
`poll_cycle(runtime)` polls every running rollout at once; `poll_rollout(runtime, id)` one. The
clients are the runtime's metric source ports (name → MetricSource), so any source type plugs
in. Reads happen outside database transactions; a rollout that moved on meanwhile drops them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.jobs.job import Job, at_start, fence_of
from bot.leader import fenced
from bot.runtime import Runtime
from bot.telemetry import observe_poll
from commands.analysis.checks import apply, check_traffic, plan_checks, run_checks
from commands.analysis.judge import Verdict
from commands.analysis.measure import Phase, Reading, classify
from commands.analysis.reads import read_due
from commands.core import Clock, Context
from commands.policy import Metric
from commands.wave.rules.base import plan_of
from commands.wave.rules.posts import refresh_status
from commands.wave.rules.reactions import daily_digest, due_polls, react, record_readings
from storage.measurements import wave_measurements
from storage.models import Rollout, RolloutState
from storage.rollouts import get_rollout, running_rollout_ids

log = logging.getLogger(__name__)

# Rollouts polled at once in a cycle.
POLL_CONCURRENCY = 16


def count_polls(readings: Sequence[tuple[Metric, Reading]]) -> None:
    """`wavegate_polls_total{source, phase}` for /metrics."""
    for metric, reading in readings:
        observe_poll(metric.source, classify(metric, reading).phase.value)


async def poll_rollout(runtime: Runtime, rollout_id: int) -> Verdict | None:
    """Take the due polls of one running rollout, then judge and react. None: not running."""
    sources = runtime.ports.sources
    with runtime.unit() as ctx:
        rollout = get_rollout(rollout_id, session=ctx.session)
        if rollout is None or rollout.state != RolloutState.running:
            return None
        due = due_polls(ctx, rollout)
        wave_index = rollout.wave_index
        checks = plan_checks(runtime.poll_memory, ctx, rollout)
    readings = await asyncio.gather(*(read_due(sources, d) for d in due))
    readings = await check_traffic(
        sources, checks, [(d.metric, r) for d, r in zip(due, readings, strict=True)]
    )
    count_polls([(d.metric, r) for d, r in zip(due, readings, strict=True)])
    # Health probe at a wave's first poll, SLO burn rates (commands/analysis/checks.py).
    drift = await run_checks(ctx, checks)
    async with runtime.poll_writes:
        with runtime.unit() as ctx:
            rollout = get_rollout(rollout_id, session=ctx.session)
            if rollout is None:
                return None
            recorded = record_readings(
                ctx,
                rollout,
                wave_index=wave_index,
                taken_at=ctx.now(),
                readings=[(d.metric, r) for d, r in zip(due, readings, strict=True)],
            )
    # The reaction runs outside the lock: an action it takes is claimed and settled in short
    # transactions of its own, with nothing held while the deploy system answers (DESIGN §10).
    with runtime.unit() as ctx:
        rollout = get_rollout(rollout_id, session=ctx.session)
        if rollout is None:
            return None
        before = (rollout.version, rollout.verdict)
        verdict = await react(ctx, rollout)
        if drift is not None:
            await apply(ctx, rollout, checks, drift)
        if recorded and (rollout.version, rollout.verdict) == before:
            refresh_status(ctx, rollout)  # new values; a change already published
    return verdict


async def poll_cycle(runtime: Runtime) -> None:
    """Poll every running rollout, POLL_CONCURRENCY at a time: their metric reads overlap (the
    sources' shared limit bounds the load on the backends), their writes take turns."""
    with runtime.unit() as ctx:
        ids = running_rollout_ids(session=ctx.session)
    limit = asyncio.Semaphore(POLL_CONCURRENCY)

    async def one(rollout_id: int) -> None:
        async with limit:
            try:
                await poll_rollout(runtime, rollout_id)
            except Exception:  # one rollout's trouble must not starve the others
                log.exception("polling rollout %s failed", rollout_id)

    await asyncio.gather(*(one(rollout_id) for rollout_id in ids))


async def post_digest(runtime: Runtime) -> None:
    with runtime.unit() as ctx:
        daily_digest(ctx)


# ---------------------------------------------------------------- on the policy's clock

# The longest the loop sleeps: how soon a started or resumed rollout gets its first poll.
LOOK_EVERY = timedelta(seconds=1)
# Woken this much after a poll is due, so the due check (now - taken >= interval) holds.
SLACK = timedelta(milliseconds=2)


def next_poll_at(ctx: Context, rollout: Rollout) -> datetime | None:
    """When the next metric of the rollout's current wave is due; None: it has no metrics.

    The same rule as `due_polls` (commands/wave/rules/reactions.py): a metric never polled in
    this wave is due at once; otherwise at its last poll plus `interval`, or plus `error_retry`
    (capped at the interval) after an error.
    """
    assert rollout.id is not None
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    rows = wave_measurements(
        rollout.id, rollout.wave_index, since=rollout.wave_started_at, session=ctx.session
    )
    times = []
    for metric in ctx.policy.wave_metrics(wave):
        taken = rows.get(metric.id)
        if not taken:
            return rollout.wave_started_at  # never polled in this wave: due since it began
        last = taken[-1]
        wait = metric.retry_after_error if last.phase == Phase.error else metric.interval
        times.append(last.taken_at + wait)
    return min(times, default=None)


class Poller:
    """Polls each running rollout when one of its metrics is due, and judges every rollout at
    least every `runtime.poll_every` (so a window that passes is acted on without a new poll).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # rollout id → when it was last polled and judged.
        self.judged: dict[int, datetime] = {}

    def _schedule(self) -> tuple[list[int], datetime | None]:
        """The rollouts due now, and when the next one that is not falls due."""
        with self.runtime.unit() as ctx:
            now = ctx.now()
            due, upcoming = [], []
            ids = running_rollout_ids(session=ctx.session)
            for rollout_id in ids:
                rollout = get_rollout(rollout_id, session=ctx.session)
                if rollout is None:
                    continue
                last = self.judged.get(rollout_id)
                when = next_poll_at(ctx, rollout)
                if last is not None:
                    fallback = last + self.runtime.poll_every
                    when = fallback if when is None else min(when, fallback)
                if when is None or when <= now:
                    due.append(rollout_id)
                else:
                    upcoming.append(when)
            for gone in set(self.judged) - set(ids):
                del self.judged[gone]
        return due, min(upcoming, default=None)

    async def step(self) -> timedelta:
        """Poll what is due; returns how long (on the runtime's clock) until the next thing is."""
        due, upcoming = self._schedule()
        if due:
            limit = asyncio.Semaphore(POLL_CONCURRENCY)

            async def one(rollout_id: int) -> None:
                async with limit:
                    try:
                        await poll_rollout(self.runtime, rollout_id)
                    except Exception:  # one rollout's trouble must not starve the others
                        log.exception("polling rollout %s failed", rollout_id)
                    self.judged[rollout_id] = self.runtime.clock()

            await asyncio.gather(*(one(rollout_id) for rollout_id in due))
            _, upcoming = self._schedule()
        if upcoming is None:
            return LOOK_EVERY
        return min(LOOK_EVERY, max(timedelta(0), upcoming - self.runtime.clock()) + SLACK)


def real_seconds(clock: Clock, delta: timedelta) -> float:
    """Wall seconds for `delta` of the runtime's clock (the console's sped-up clock runs fast)."""
    factor = getattr(clock, "factor", 1.0)
    return delta.total_seconds() / factor if factor > 0 else delta.total_seconds()


async def poll_loop(runtime: Runtime) -> None:
    """The poller, until cancelled: polls only while this process leads, fenced by its epoch."""
    poller = Poller(runtime)
    try:
        await _poll_forever(runtime, poller)
    except asyncio.CancelledError:
        return  # the scheduler's shutdown: an end, not an error for APScheduler to log


async def _poll_forever(runtime: Runtime, poller: Poller) -> None:
    while True:
        wait = LOOK_EVERY
        if runtime.leads():
            try:
                with fenced(fence_of(runtime)):
                    wait = await poller.step()
            except Exception:  # a broken database must not kill the poller; it tries again
                log.exception("the poll loop failed; trying again")
        await asyncio.sleep(max(0.001, real_seconds(runtime.clock, wait)))


def jobs(runtime: Runtime) -> list[Job]:
    return [
        Job("wave-poll", poll_loop, at_start(), loop=True),
        Job("wave-digest", post_digest, CronTrigger(hour=9, minute=0, timezone="UTC")),
    ]
