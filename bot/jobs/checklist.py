"""Checklist jobs: expiry reminders, and the verification of items verified by metrics."""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.jobs.job import Job, every
from bot.runtime import Runtime
from commands.ready.expiry import expiring_items
from commands.ready.verification import (
    metric_items,
    record_verification,
    unverified_items,
    verify_item,
)
from storage.models import Release

log = logging.getLogger(__name__)

# Not more often than the metrics' own interval, and at least every few minutes.
FASTEST = timedelta(seconds=1)
SLOWEST = timedelta(minutes=5)


async def remind_expiring(runtime: Runtime) -> None:
    """An item that expires within a day is announced once."""
    with runtime.unit() as ctx:
        expiring_items(ctx, within=timedelta(days=1))


async def verify_by_metrics(runtime: Runtime) -> None:
    """Read the listed metrics for every open release; record a pass where all returned data.

    No transaction stays open while the metric backends answer: one finds the work, the reads
    run, and each pass is recorded in a short transaction of its own.
    """
    with runtime.unit() as ctx:
        work = unverified_items(ctx)
    for release, item in work:
        verification = await verify_item(release, item, ctx)
        with runtime.unit() as ctx:
            current = ctx.session.get(Release, release.id)
            if current is not None:
                record_verification(verification, current, ctx)
        log.info("%s", verification.explain())


def verification_interval(runtime: Runtime) -> timedelta:
    intervals = [
        metric.interval
        for item in metric_items(runtime.policy)
        for name in item.verify.metrics
        if (metric := runtime.policy.metric(name)) is not None
    ]
    return max(FASTEST, min([SLOWEST, *intervals]))


def jobs(runtime: Runtime) -> list[Job]:
    return [
        Job("checklist-expiry", remind_expiring, CronTrigger(hour=9, minute=0, timezone="UTC")),
        Job("verify-by-metrics", verify_by_metrics, every(verification_interval(runtime))),
    ]
