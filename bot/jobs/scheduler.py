"""Scheduled work (APScheduler 3.x): every job family's jobs by name; jobs are idempotent."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.jobs import checklist, incidents, recovery, retention, waves
from bot.jobs.job import Job, leader_only
from bot.runtime import Runtime


def jobs(runtime: Runtime) -> list[Job]:
    """Every scheduled job. Families add theirs here."""
    return [
        *checklist.jobs(runtime),
        *incidents.jobs(runtime),
        *waves.jobs(runtime),
        *recovery.jobs(runtime),
        *retention.jobs(runtime),
    ]


def build_scheduler(runtime: Runtime) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job in jobs(runtime):
        scheduler.add_job(
            # With several replicas only the leader runs jobs (bot/leader.py); a loop asks at
            # every turn instead, since this process may become the leader later.
            job.run if job.loop else leader_only(job.run),
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
