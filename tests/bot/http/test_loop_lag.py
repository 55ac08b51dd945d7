"""`wavegate_event_loop_lag_seconds` on /metrics: the service measures how long its loops stall,
the HTTP loop (acks, health checks) and the work loop (units of work) each in its own series."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import Engine

from bot.runtime import Runtime
from commands.policy import Policy
from tests.bot.http.test_metrics_endpoint import Samples, scrape, value
from tests.conftest import Service, service_settings, start_service
from tests.support.clock import FakeClock
from tests.support.slack import FakeSlack

LAG = "wavegate_event_loop_lag_seconds"


@pytest.fixture
async def running(
    slack: FakeSlack, engine: Engine, policy: Policy, clock: FakeClock, sqlite_url: str
) -> AsyncIterator[Service]:
    runtime = Runtime(
        settings=service_settings(slack, sqlite_url), engine=engine, policy=policy, clock=clock
    )
    runner, service = await start_service(runtime, slack, background=True)
    yield service
    await service.http.close()
    await runner.cleanup()


async def lag_grows(service: Service, loop: str, before: Samples) -> Samples:
    """The samples once the `loop` series has recorded 0.3 s more lag (the watcher records
    when its sleep ends: at most a few ticks)."""
    after = before
    for _ in range(40):
        after = await scrape(service)
        if value(after, f"{LAG}_sum", loop=loop) - value(before, f"{LAG}_sum", loop=loop) >= 0.3:
            break
        await asyncio.sleep(0.1)
    return after


async def test_a_stalled_http_loop_shows_in_the_lag_histogram_on_metrics(
    running: Service,
) -> None:
    samples = await scrape(running)
    assert (f"{LAG}_count", (("loop", "http"),)) in samples
    before_count = value(samples, f"{LAG}_count", loop="http")
    # The watcher sleeps 0.25 s at a time; blocking the loop for 0.6 s makes at least one
    # wake-up come 0.35 s late whenever it began its sleep.
    time.sleep(0.6)  # noqa: ASYNC251 - the stall is the point
    after = await lag_grows(running, "http", samples)
    assert value(after, f"{LAG}_count", loop="http") > before_count
    assert (
        value(after, f"{LAG}_sum", loop="http") - value(samples, f"{LAG}_sum", loop="http") >= 0.3
    )
    late = value(after, f"{LAG}_count", loop="http") - value(
        after, f"{LAG}_bucket", loop="http", le="0.25"
    )
    late_before = before_count - value(samples, f"{LAG}_bucket", loop="http", le="0.25")
    assert late - late_before >= 1


async def test_a_stalled_work_loop_shows_in_its_own_series_and_not_the_http_loops(
    running: Service,
) -> None:
    work = running.runtime.work
    assert work.threaded
    samples = await scrape(running)
    # A unit of work that blocks for 0.6 s, on the work loop's thread.
    await work.call(lambda: time.sleep(0.6))
    after = await lag_grows(running, "work", samples)
    assert (
        value(after, f"{LAG}_sum", loop="work") - value(samples, f"{LAG}_sum", loop="work") >= 0.3
    )
    # Meanwhile the HTTP loop answered and its own watcher saw no such stall.
    assert value(after, f"{LAG}_sum", loop="http") - value(samples, f"{LAG}_sum", loop="http") < 0.3
