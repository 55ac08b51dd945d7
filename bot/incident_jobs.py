"""Scheduled incident work: status-update reminders and the monthly review."""

from __future__ import annotations

from datetime import timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlmodel import Session

from bot.runtime import Runtime
from bot.scheduler import Job, every
from commands.incident.reminders import remind_due
from commands.incident.review import post_monthly_review

# The shortest cadence a policy is likely to set is minutes; checking each minute is enough.
REMINDER_CHECK = timedelta(minutes=1)


async def remind_incidents(runtime: Runtime) -> None:
    with Session(runtime.engine, expire_on_commit=False) as session:
        remind_due(runtime.context(session))
        session.commit()
    runtime.outbox_ready.set()


async def post_review(runtime: Runtime) -> None:
    with Session(runtime.engine, expire_on_commit=False) as session:
        post_monthly_review(runtime.context(session))
        session.commit()
    runtime.outbox_ready.set()


def incident_jobs(runtime: Runtime) -> list[Job]:
    return [
        Job("incident-reminders", remind_incidents, every(REMINDER_CHECK)),
        # The 1st of each month reviews the month before; posted once however often it runs.
        Job(
            "incident-review",
            post_review,
            CronTrigger(day=1, hour=9, minute=0, timezone="UTC"),
        ),
    ]
