"""`wavegate_event_loop_lag_seconds` on /metrics: the service measures how long its loop stalls."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.engine import Engine

from bot.runtime import Runtime
from commands.policy import Policy
from tests.bot.http.test_metrics_endpoint import scrape, value
from tests.conftest import service_settings, start_service
from tests.support.clock import FakeClock
from tests.support.slack import FakeSlack

LAG = "wavegate_event_loop_lag_seconds"


async def test_a_stalled_event_loop_shows_in_the_lag_histogram_on_metrics(
    slack: FakeSlack, engine: Engine, policy: Policy, clock: FakeClock, sqlite_url: str
) -> None:
    runtime = Runtime(
        settings=service_settings(slack, sqlite_url), engine=engine, policy=policy, clock=clock
    )
    runner, service = await start_service(runtime, slack, background=True)
    try:
        samples = await scrape(service)
        assert (f"{LAG}_count", ()) in samples
        before_count = value(samples, f"{LAG}_count")
        before_sum = value(samples, f"{LAG}_sum")
        # The watcher sleeps 0.25 s at a time; blocking the loop for 0.6 s makes at least one
        # wake-up come 0.35 s late whenever it began its sleep.
        time.sleep(0.6)  # noqa: ASYNC251 - the stall is the point
        for _ in range(40):  # the watcher records once its sleep ends: at most a few ticks
            after = await scrape(service)
            if value(after, f"{LAG}_sum") - before_sum >= 0.3:
                break
            await asyncio.sleep(0.1)
        assert value(after, f"{LAG}_count") > before_count
        assert value(after, f"{LAG}_sum") - before_sum >= 0.3
        late = value(after, f"{LAG}_count") - value(after, f"{LAG}_bucket", le="0.25")
        assert late - (before_count - value(samples, f"{LAG}_bucket", le="0.25")) >= 1
    finally:
        await service.http.close()
        await runner.cleanup()
