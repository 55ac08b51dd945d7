"""Scheduled incident work: status-update reminders and the monthly review."""

from __future__ import annotations

from datetime import timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.jobs.job import Job, every
from bot.runtime import Runtime
from commands.incident.reminders import remind_due
from commands.incident.review import post_monthly_review

# The shortest cadence a policy is likely to set is minutes; checking each minute is enough.
REMINDER_CHECK = timedelta(minutes=1)


async def remind_incidents(runtime: Runtime) -> None:
    with runtime.unit() as ctx:
        remind_due(ctx)


async def post_review(runtime: Runtime) -> None:
    with runtime.unit() as ctx:
        post_monthly_review(ctx)


def jobs(runtime: Runtime) -> list[Job]:
    return [
        Job("incident-reminders", remind_incidents, every(REMINDER_CHECK)),
        # The 1st of each month reviews the month before; posted once however often it runs.
        Job(
            "incident-review",
            post_review,
            CronTrigger(day=1, hour=9, minute=0, timezone="UTC"),
        ),
    ]
