"""The scheduled verification of checklist items verified by metrics (observability)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlmodel import Session

from bot.runtime import Runtime
from bot.scheduler import Job, every
from bot.sources.http import runtime_sources
from commands.observability import (
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


async def verify_by_metrics(runtime: Runtime) -> None:
    """Read the listed metrics for every open release; record a pass where all returned data.

    No transaction stays open while the metric backends answer: one finds the work, the reads
    run, and each pass is recorded in a short transaction of its own.
    """
    runtime_sources(runtime)
    with Session(runtime.engine, expire_on_commit=False) as session:
        work = unverified_items(runtime.context(session))
    recorded = 0
    for release, item in work:
        with Session(runtime.engine, expire_on_commit=False) as session:
            ctx = runtime.context(session)
            verification = await verify_item(release, item, ctx)
            session.rollback()  # nothing was written; end the read transaction
            current = session.get(Release, release.id)
            if current is not None and record_verification(verification, current, ctx):
                recorded += 1
            session.commit()
        log.info("%s", verification.explain())
    if recorded:
        runtime.outbox_ready.set()


def verification_interval(runtime: Runtime) -> timedelta:
    intervals = [
        metric.interval
        for item in metric_items(runtime.policy)
        for name in item.verify.metrics
        if (metric := runtime.policy.metric(name)) is not None
    ]
    return max(FASTEST, min([SLOWEST, *intervals]))


def verification_job(runtime: Runtime) -> Job:
    return Job("verify-by-metrics", verify_by_metrics, every(verification_interval(runtime)))
