"""Checklist expiry reminders: an item that expires within a day is announced once."""

from __future__ import annotations

from datetime import timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlmodel import Session

from bot.runtime import Runtime
from bot.scheduler import Job
from commands.checklist import expiring_items


async def remind_expiring(runtime: Runtime) -> None:
    with Session(runtime.engine, expire_on_commit=False) as session:
        expiring_items(runtime.context(session), within=timedelta(days=1))
        session.commit()
    runtime.outbox_ready.set()


def checklist_expiry_job(runtime: Runtime) -> Job:
    return Job("checklist-expiry", remind_expiring, CronTrigger(hour=9, minute=0, timezone="UTC"))
