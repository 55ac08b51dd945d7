"""Metric polling of running rollouts, the reactions to their verdicts, and the daily digest.

`poll_cycle(runtime)` polls every running rollout; `poll_rollout(runtime, id)` one of them. The
clients are the runtime's metric source ports (name → MetricSource), so any source type plugs
in. Reads happen outside database transactions; a rollout that moved on meanwhile drops them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from apscheduler.triggers.cron import CronTrigger

from bot.jobs.job import Job, every
from bot.runtime import Runtime
from bot.telemetry import observe_poll
from commands.analysis.checks import apply, check_traffic, plan_checks, run_checks
from commands.analysis.judge import Verdict
from commands.analysis.measure import MetricSource, Reading, classify
from commands.policy import Metric
from commands.wave.rules.posts import refresh_status
from commands.wave.rules.reactions import daily_digest, due_polls, react, record_readings
from storage.models import RolloutState
from storage.rollouts import get_rollout, running_rollout_ids

log = logging.getLogger(__name__)

# Rollouts polled at once in a cycle.
POLL_CONCURRENCY = 16


async def _read(sources: Mapping[str, MetricSource], metric: Metric, query: str) -> Reading:
    source = sources.get(metric.source)
    if source is None:
        return Reading(error=f"no client for source {metric.source!r}")
    try:
        return await source.read(query, metric=metric)
    except Exception as exc:  # a broken client is provider trouble, never a crash of the poller
        log.exception("source %s failed on %s", metric.source, metric.id)
        return Reading(error=f"{type(exc).__name__}: {exc}", detail=query)


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
    readings = await asyncio.gather(*(_read(sources, d.metric, d.query) for d in due))
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


def jobs(runtime: Runtime) -> list[Job]:
    return [
        Job("wave-poll", poll_cycle, every(runtime.poll_every)),
        Job("wave-digest", post_digest, CronTrigger(hour=9, minute=0, timezone="UTC")),
    ]
