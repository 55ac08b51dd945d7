"""The steps of one poll of many rollouts (bot/jobs/waves.py `poll_rollouts` runs them): plan
what is due in one unit of work, read with no transaction open, store and judge a batch in one
unit, react in full in units of a rollout's own where the verdict asks for it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.runtime import Runtime
from bot.telemetry import observe_poll
from commands.analysis.checks import Checks, apply, check_traffic, plan_checks, run_checks
from commands.analysis.guardrails import Drift
from commands.analysis.judge import Verdict
from commands.analysis.measure import Reading, classify
from commands.analysis.reads import DuePoll, read_due
from commands.analysis.standing import store_polls
from commands.core import Conflict, Context
from commands.policy import Metric
from commands.wave.rules.base import thread_key
from commands.wave.rules.gate import keep_incident_blockers
from commands.wave.rules.posts import STATUS_REFRESH, publish_status, refresh_status
from commands.wave.rules.reactions import due_polls, quiet, react, taken_of
from storage.models import RolloutState
from storage.outbox import last_posts_at
from storage.rollouts import get_rollout, rollouts_by_id
from storage.tallies import tallies_of

log = logging.getLogger(__name__)


def count_polls(readings: Sequence[tuple[Metric, Reading]]) -> None:
    """`wavegate_polls_total{source, phase}` for /metrics."""
    for metric, reading in readings:
        observe_poll(metric.source, classify(metric, reading).phase.value)


@dataclass
class Polled:
    """One rollout's poll as it moves through the pipeline: planned, read, stored, judged."""

    rollout_id: int
    wave_index: int
    due: list[DuePoll]
    checks: Checks
    # The planning unit's context (its session closed): policy, clock and ports for the checks.
    ctx: Context
    readings: list[tuple[Metric, Reading]] = field(default_factory=list)
    drift: Drift | None = None
    verdict: Verdict | None = None


def plan(runtime: Runtime, ids: Sequence[int]) -> list[Polled]:
    """What is due of each running rollout of `ids`, in one short unit of work."""
    planned = []
    with runtime.unit() as ctx:
        rollouts = rollouts_by_id(ids, session=ctx.session)
        running = [r for r in rollouts.values() if r.state == RolloutState.running]
        keys = [(r.id, r.wave_index) for r in running if r.id is not None]
        tallies = tallies_of(keys, session=ctx.session)
        for rollout in running:
            assert rollout.id is not None
            try:
                due = due_polls(ctx, rollout, tallies=tallies[(rollout.id, rollout.wave_index)])
                checks = plan_checks(runtime.poll_memory, ctx, rollout)
            except Conflict:  # its plan left the policy: one rollout's trouble, not the cycle's
                log.exception("polling rollout %s failed", rollout.id)
                continue
            planned.append(Polled(rollout.id, rollout.wave_index, due, checks, ctx))
        ctx.session.info.pop("held", None)  # the reads keep `ctx`, not the rows it loaded
    return planned


async def read(runtime: Runtime, polled: Polled) -> None:
    """The metric reads and the checks of one rollout, with no transaction open."""
    sources = runtime.ports.sources
    readings = await asyncio.gather(*(read_due(sources, d) for d in polled.due))
    pairs = [(d.metric, r) for d, r in zip(polled.due, readings, strict=True)]
    readings = await check_traffic(sources, polled.checks, pairs)
    polled.readings = [(d.metric, r) for d, r in zip(polled.due, readings, strict=True)]
    count_polls(polled.readings)
    # Health probe at a wave's first poll, SLO burn rates (commands/analysis/checks.py).
    polled.drift = await run_checks(polled.ctx, polled.checks)


def store(runtime: Runtime, batch: Sequence[Polled]) -> list[tuple[Polled, int]]:
    """Store and judge the polls of `batch` in one unit of work (one insert of the polls, one
    read and write of their tallies). Returns the rollouts whose reaction has work to do, with
    how many polls each stored; the others are settled here."""
    busy = []
    with runtime.unit() as ctx:
        keep_incident_blockers(ctx)  # this unit changes no incident: one read for the batch
        rollouts = rollouts_by_id([p.rollout_id for p in batch], session=ctx.session)
        takens = {}
        for polled in batch:
            rollout = rollouts.get(polled.rollout_id)
            if rollout is None:
                continue
            taken = taken_of(
                ctx,
                rollout,
                wave_index=polled.wave_index,
                taken_at=ctx.now(),
                readings=polled.readings,
            )
            if taken is not None:
                takens[polled.rollout_id] = taken
        tallies = store_polls(list(takens.values()), session=ctx.session)
        posted = last_posts_at([thread_key(r) for r in rollouts.values()], session=ctx.session)
        for polled in batch:
            rollout = rollouts.get(polled.rollout_id)
            if rollout is None:
                continue
            recorded = len(polled.readings) if polled.rollout_id in takens else 0
            key = (polled.rollout_id, rollout.wave_index)
            settled, verdict = (False, None)
            if polled.drift is None and key in tallies:
                settled, verdict = quiet(ctx, rollout, tallies[key])
            if not settled:
                busy.append((polled, recorded))
                continue
            polled.verdict = verdict
            last = posted.get(thread_key(rollout))
            due = last is None or ctx.now() - last >= STATUS_REFRESH
            if recorded and due and runtime.poll_memory.refreshes.take(ctx.now()):
                publish_status(ctx, rollout)  # new values, the same verdict
    return busy


async def react_in_full(runtime: Runtime, polled: Polled, recorded: int) -> None:
    """The full reaction of one rollout, in units of its own: an action it takes is claimed and
    settled in short transactions, nothing held while the deploy system answers (DESIGN §10)."""
    with runtime.unit() as ctx:
        rollout = get_rollout(polled.rollout_id, session=ctx.session)
        if rollout is None:
            return
        before = (rollout.version, rollout.verdict)
        polled.verdict = await react(ctx, rollout)
        if polled.drift is not None:
            await apply(ctx, rollout, polled.checks, polled.drift)
        if recorded and (rollout.version, rollout.verdict) == before:
            refresh_status(ctx, rollout)  # new values; a change already published
