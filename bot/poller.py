"""Metric polling of running rollouts, the reactions to their verdicts, and the daily digest.

`poll_cycle(runtime)` polls every running rollout; `poll_rollout(runtime, id)` one of them. The
clients come from `runtime.services["sources"]` (name → MetricSource), so any source type plugs
in. Reads happen outside database transactions; a rollout that moved on meanwhile drops them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlmodel import Session

from bot import guardrails
from bot.runtime import Runtime
from bot.scheduler import Job, every
from bot.sources.http import runtime_sources
from commands.judge import Verdict
from commands.measure import MetricSource, Reading
from commands.policy import Metric
from commands.wave import rules
from storage.rollouts import get_rollout, running_rollout_ids

log = logging.getLogger(__name__)

# How often the poll job looks for due polls (real seconds); each metric keeps its own interval.
POLL_EVERY = timedelta(seconds=5)
# Rollouts polled at once in a cycle.
POLL_CONCURRENCY = 16


def ensure_services(runtime: Runtime) -> None:
    """Metric source clients and the actuator, unless something else provided them already."""
    from bot.actuator import build_actuator

    # One shared HTTP session and concurrency limit for every source (bot/sources/http.py).
    runtime_sources(runtime)
    if "actuator" not in runtime.services:
        actuator = build_actuator(runtime.policy)
        if actuator is not None:
            runtime.services["actuator"] = actuator


async def _read(sources: Mapping[str, MetricSource], metric: Metric, query: str) -> Reading:
    source = sources.get(metric.source)
    if source is None:
        return Reading(error=f"no client for source {metric.source!r}")
    try:
        return await source.read(query, metric=metric)
    except Exception as exc:  # a broken client is provider trouble, never a crash of the poller
        log.exception("source %s failed on %s", metric.source, metric.id)
        return Reading(error=f"{type(exc).__name__}: {exc}", detail=query)


async def poll_rollout(runtime: Runtime, rollout_id: int) -> Verdict | None:
    """Take the due polls of one running rollout, then judge and react. None: not running."""
    # Built on first use where no app did it (the console): bot/sources/http.py.
    sources = runtime_sources(runtime)
    with Session(runtime.engine, expire_on_commit=False) as session:
        ctx = runtime.context(session)
        rollout = get_rollout(rollout_id, session=session)
        if rollout is None or rollout.state != "running":
            return None
        due = rules.due_polls(ctx, rollout)
        wave_index = rollout.wave_index
        checks = guardrails.plan_checks(runtime, ctx, rollout)
    readings = await asyncio.gather(*(_read(sources, d.metric, d.query) for d in due))
    readings = await guardrails.check_traffic(
        sources, checks, [(d.metric, r) for d, r in zip(due, readings, strict=True)]
    )
    guardrails.count_polls([(d.metric, r) for d, r in zip(due, readings, strict=True)])
    # Health probe at a wave's first poll, SLO burn rates (bot/guardrails.py).
    drift = await guardrails.run_checks(ctx, checks)
    async with _writes(runtime):
        with Session(runtime.engine, expire_on_commit=False) as session:
            ctx = runtime.context(session)
            rollout = get_rollout(rollout_id, session=session)
            if rollout is None:
                return None
            recorded = rules.record_readings(
                ctx,
                rollout,
                wave_index=wave_index,
                taken_at=ctx.now(),
                readings=[(d.metric, r) for d, r in zip(due, readings, strict=True)],
            )
            # The polls are kept even if the reaction fails, and its actuator call (which may
            # take seconds) is not awaited inside this write.
            session.commit()
            before = (rollout.version, rollout.verdict)
            verdict = await rules.react(ctx, rollout)
            if drift is not None:
                await guardrails.apply(ctx, rollout, checks, drift)
            if recorded and (rollout.version, rollout.verdict) == before:
                rules.refresh_status(ctx, rollout)  # new values; a change already published
            session.commit()
    runtime.outbox_ready.set()
    return verdict


def _writes(runtime: Runtime) -> asyncio.Lock:
    """One poll's write transaction at a time: a reaction may await the deploy system while it
    holds SQLite's write lock, and a second writer would then block the event loop."""
    lock: asyncio.Lock = runtime.services.setdefault("poll_writes", asyncio.Lock())
    return lock


async def poll_cycle(runtime: Runtime) -> None:
    """Poll every running rollout, POLL_CONCURRENCY at a time: their metric reads overlap (the
    sources' shared limit bounds the load on the backends), their writes take turns."""
    with Session(runtime.engine) as session:
        ids = running_rollout_ids(session=session)
    limit = asyncio.Semaphore(POLL_CONCURRENCY)

    async def one(rollout_id: int) -> None:
        async with limit:
            try:
                await poll_rollout(runtime, rollout_id)
            except Exception:  # one rollout's trouble must not starve the others
                log.exception("polling rollout %s failed", rollout_id)

    await asyncio.gather(*(one(rollout_id) for rollout_id in ids))


async def post_digest(runtime: Runtime) -> None:
    with Session(runtime.engine, expire_on_commit=False) as session:
        rules.daily_digest(runtime.context(session))
        session.commit()
    runtime.outbox_ready.set()


def poll_job(runtime: Runtime) -> Job:
    interval = runtime.services.get("poll_every", POLL_EVERY)
    return Job("wave-poll", poll_cycle, every(interval))


def digest_job(runtime: Runtime) -> Job:
    return Job("wave-digest", post_digest, CronTrigger(hour=9, minute=0, timezone="UTC"))
