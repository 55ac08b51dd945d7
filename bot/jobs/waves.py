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
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.jobs import poll_steps as steps
from bot.jobs.job import Job, at_start, fence_of
from bot.leader import fenced
from bot.runtime import Runtime
from commands.analysis.judge import Verdict
from commands.core import Clock, Context
from commands.wave.rules.reactions import daily_digest, metrics_due_at
from storage.models import Rollout
from storage.rollouts import rollouts_by_id, running_rollout_ids
from storage.tallies import TallyRow, tallies_of

log = logging.getLogger(__name__)

# Rollouts whose metrics are read at once in a cycle.
POLL_CONCURRENCY = 16
# Rollouts planned in one unit of work, and stored and judged in one at most.
PLAN_BATCH = 50
WRITE_BATCH = 50
# How long the writer waits for more readings after the first before it stores a batch.
GATHER = timedelta(milliseconds=50)


async def poll_rollouts(runtime: Runtime, ids: Sequence[int]) -> dict[int, Verdict | None]:
    """Poll the running rollouts of `ids`; their verdicts (None: not judged).

    What is due is planned PLAN_BATCH rollouts to a unit of work; the reads run with no
    transaction open, POLL_CONCURRENCY rollouts at a time; whatever readings are ready are
    stored and judged together in one unit (at most WRITE_BATCH rollouts), the writes taking
    turns; a reaction that acts runs in units of its own. So a slow source or deploy system
    holds up only its own rollout, and a steady poll costs a share of a few statements.
    """
    ready: asyncio.Queue[steps.Polled | None] = asyncio.Queue()
    limit = asyncio.Semaphore(POLL_CONCURRENCY)
    polled_all: list[steps.Polled] = []
    reactions: list[asyncio.Task[None]] = []

    reading = [0]  # reads not finished yet

    async def read(polled: steps.Polled) -> None:
        reading[0] += 1
        try:
            async with limit:
                await steps.read(runtime, polled)
            await ready.put(polled)
        except Exception:  # one rollout's trouble must not starve the others
            log.exception("polling rollout %s failed", polled.rollout_id)
        finally:
            reading[0] -= 1

    async def react_one(polled: steps.Polled, recorded: int) -> None:
        try:
            await steps.react_in_full(runtime, polled, recorded)
        except Exception:
            log.exception("reacting to rollout %s failed", polled.rollout_id)

    async def write(batch: list[steps.Polled]) -> None:
        async with runtime.poll_writes:
            try:
                busy = steps.store(runtime, batch)
            except Exception:  # one rollout's trouble must not lose the others' polls
                log.exception("storing a batch of %s polls failed; one by one", len(batch))
                busy = []
                for polled in batch:
                    try:
                        busy += steps.store(runtime, [polled])
                    except Exception:
                        log.exception("polling rollout %s failed", polled.rollout_id)
        reactions.extend(asyncio.create_task(react_one(p, n)) for p, n in busy)

    async def writer() -> None:
        """Stores what is ready until the end (None) comes; while reads are still out, it
        gathers for GATHER after the first, so a cycle makes fewer, larger commits."""
        while True:
            item = await ready.get()
            if item is not None and reading[0] and ready.qsize() < WRITE_BATCH - 1:
                await asyncio.sleep(GATHER.total_seconds())
            batch: list[steps.Polled] = []
            while item is not None:
                batch.append(item)
                if len(batch) >= WRITE_BATCH or ready.empty():
                    break
                item = ready.get_nowait()
            if batch:
                await write(batch)
                await asyncio.sleep(0)  # let the app answer between batches
            if item is None:
                return

    writing = asyncio.create_task(writer())
    reads: list[asyncio.Task[None]] = []
    try:
        for start in range(0, len(ids), PLAN_BATCH):
            for polled in steps.plan(runtime, ids[start : start + PLAN_BATCH]):
                polled_all.append(polled)
                reads.append(asyncio.create_task(read(polled)))
            await asyncio.sleep(0)  # the reads begin while the next batch is planned
        await asyncio.gather(*reads)
        await ready.put(None)
        await writing
        await asyncio.gather(*reactions)
    finally:
        for task in (writing, *reads, *reactions):
            task.cancel()
    return {p.rollout_id: p.verdict for p in polled_all}


async def poll_rollout(runtime: Runtime, rollout_id: int) -> Verdict | None:
    """Take the due polls of one running rollout, then judge and react. None: not running."""
    return (await poll_rollouts(runtime, [rollout_id])).get(rollout_id)


async def poll_cycle(runtime: Runtime) -> None:
    """Poll every running rollout (bot/jobs/waves.py `poll_rollouts`)."""
    with runtime.unit() as ctx:
        ids = running_rollout_ids(session=ctx.session)
    await poll_rollouts(runtime, ids)


async def post_digest(runtime: Runtime) -> None:
    with runtime.unit() as ctx:
        daily_digest(ctx)


# ---------------------------------------------------------------- on the policy's clock

# The longest the loop sleeps: how soon a started or resumed rollout gets its first poll.
LOOK_EVERY = timedelta(seconds=1)
# Woken this much after a poll is due, so the due check (now - taken >= interval) holds.
SLACK = timedelta(milliseconds=2)


def next_poll_at(
    ctx: Context, rollout: Rollout, *, tallies: Mapping[str, TallyRow] | None = None
) -> datetime | None:
    """When the next metric of the rollout's current wave is due (the rule of `due_polls`,
    commands/wave/rules/reactions.py); None: it has no metrics. `tallies`: the wave's, when
    read already."""
    return min((at for _, at in metrics_due_at(ctx, rollout, tallies=tallies)), default=None)


class Poller:
    """Polls each running rollout when one of its metrics is due, and judges every rollout at
    least every `runtime.poll_every` (so a window that passes is acted on without a new poll).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # rollout id → when it was last polled and judged.
        self.judged: dict[int, datetime] = {}

    def _schedule(self) -> tuple[list[int], datetime | None]:
        """The rollouts due now, and when the next one that is not falls due (a few queries
        for all of them: the rollouts, then their waves' tallies)."""
        with self.runtime.unit() as ctx:
            now = ctx.now()
            due, upcoming = [], []
            ids = running_rollout_ids(session=ctx.session)
            for start in range(0, len(ids), PLAN_BATCH):
                rollouts = rollouts_by_id(ids[start : start + PLAN_BATCH], session=ctx.session)
                keys = [(r.id, r.wave_index) for r in rollouts.values() if r.id is not None]
                tallies = tallies_of(keys, session=ctx.session)
                for rollout_id, rollout in sorted(rollouts.items()):
                    last = self.judged.get(rollout_id)
                    when = next_poll_at(
                        ctx, rollout, tallies=tallies[(rollout_id, rollout.wave_index)]
                    )
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
            try:
                await poll_rollouts(self.runtime, due)
            except Exception:  # one cycle's trouble must not stop the loop
                log.exception("polling %s rollouts failed", len(due))
            at = self.runtime.clock()
            for rollout_id in due:
                self.judged[rollout_id] = at
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
