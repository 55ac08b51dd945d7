"""The daily measurement roll-up (leader only): finished waves' old raw polls become summaries."""

from __future__ import annotations

import asyncio
import logging

from apscheduler.triggers.cron import CronTrigger

from bot.jobs.job import Job
from bot.runtime import Runtime
from commands.analysis.retention import BATCH, RollUp, roll_up_measurements
from storage.db import session_scope

log = logging.getLogger(__name__)

# A bound on one night's work, so a backlog is worked off over several nights, not in one stall.
MAX_BATCHES = 500


def _one_batch(runtime: Runtime) -> RollUp:
    # Runs in a worker thread: its own session, committed per batch, nothing async inside.
    with session_scope(runtime.engine) as session:
        return roll_up_measurements(runtime.context(session), limit=BATCH)


async def roll_up(runtime: Runtime) -> None:
    """Roll up every metric that is due, a batch per transaction, off the event loop."""
    summaries = deleted = 0
    for _ in range(MAX_BATCHES):
        batch = await asyncio.to_thread(_one_batch, runtime)
        summaries += batch.summaries
        deleted += batch.deleted
        if batch.summaries < BATCH:
            break
    if summaries:
        log.info("rolled up %s wave metrics (%s raw polls deleted)", summaries, deleted)


def jobs(runtime: Runtime) -> list[Job]:
    return [Job("measurement-rollup", roll_up, CronTrigger(hour=3, minute=17, timezone="UTC"))]
