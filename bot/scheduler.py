"""Scheduled work (APScheduler 3.x): jobs are registered by name and are idempotent."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.leader import leader_only
from bot.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    id: str
    run: Callable[[Runtime], Awaitable[None]]
    trigger: BaseTrigger


def jobs(runtime: Runtime) -> list[Job]:
    """Every scheduled job. Families add theirs here."""
    from bot.incident_jobs import incident_jobs
    from bot.poller import digest_job, poll_job
    from bot.reminders import checklist_expiry_job
    from bot.verification import verification_job

    return [
        checklist_expiry_job(runtime),
        *incident_jobs(runtime),
        poll_job(runtime),
        digest_job(runtime),
        verification_job(runtime),
    ]


def build_scheduler(runtime: Runtime) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job in jobs(runtime):
        scheduler.add_job(
            # With several replicas only the leader runs jobs (bot/leader.py).
            leader_only(job.run),
            trigger=job.trigger,
            args=[runtime],
            id=job.id,
            # A missed run is run once, late, rather than several times or not at all.
            coalesce=True,
            max_instances=1,
            misfire_grace_time=60,
            replace_existing=True,
        )
    return scheduler


def every(interval: timedelta) -> IntervalTrigger:
    return IntervalTrigger(seconds=interval.total_seconds(), timezone="UTC")
