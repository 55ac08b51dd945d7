"""The aiohttp application factory: routes, the Bolt app, the work loop and the background work
it runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot.http import checklist, health, incidents, rollouts, slack_events
from bot.http.api import MAX_BODY_BYTES, api_middleware
from bot.http.keys import BOLT, DELIVERY, HOME, LISTENERS, RUNTIME, SCHEDULER
from bot.jobs.scheduler import build_scheduler
from bot.leader import Leadership, campaign, replica_id
from bot.outbox import OutboxDelivery
from bot.runtime import Runtime
from bot.slack.app import build_bolt_app
from bot.slack.chat import SlackIncidentChat
from bot.telemetry import watch_loop_lag
from bot.wiring import slack_client, wire

# Seconds a shutdown waits for work acknowledged to Slack but not finished.
SHUTDOWN_GRACE = 10.0


def create_app(
    runtime: Runtime,
    *,
    client: AsyncWebClient | None = None,
    background: bool = True,
    work_thread: bool = True,
) -> web.Application:
    """The service. `background=False` leaves out the scheduler and outbox worker (tests that
    drive them by hand). `work_thread=False` runs the units of work on the HTTP loop itself
    (bot/work.py) instead of the work loop's own thread."""
    client = client or slack_client(runtime.settings)
    wire(runtime, chat=SlackIncidentChat(client))
    app = web.Application(middlewares=[api_middleware], client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    app[BOLT], app[LISTENERS], app[HOME] = build_bolt_app(runtime, client)
    app[DELIVERY] = OutboxDelivery(runtime.engine, client, runtime.clock)
    app[SCHEDULER] = build_scheduler(runtime)
    for module in (slack_events, health, checklist, rollouts, incidents):
        app.add_routes(module.routes)
    # First, so that it is torn down last: the background work stops on the work loop.
    app.cleanup_ctx.append(_work_loop(threaded=work_thread))
    if background:
        app.cleanup_ctx.append(_loop_lag)
        app.cleanup_ctx.append(_background)
    return app


def _work_loop(*, threaded: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def work_loop(app: web.Application) -> AsyncIterator[None]:
        """The work loop's thread runs from the app's start to its end. At the end the metric
        sources' shared HTTP session (opened on first use, on the work loop) closes and the App
        Home stops refreshing, on the loop they belong to."""
        runtime = app[RUNTIME]
        if threaded:
            runtime.work.start()
        yield
        await runtime.work.run(_close_shared(app))
        await runtime.work.stop()

    return work_loop


async def _close_shared(app: web.Application) -> None:
    await app[HOME].stop()
    await app[RUNTIME].source_http.close()
    await app[DELIVERY].sender.close()  # a session opened by a delivery on this loop


async def _loop_lag(app: web.Application) -> AsyncIterator[None]:
    """`wavegate_event_loop_lag_seconds`: how long anything blocked the HTTP loop (what delays
    acks and health checks) and, in its own series, the work loop."""
    work = app[RUNTIME].work
    watchers = [asyncio.create_task(watch_loop_lag("http"))]
    on_work = await work.start_task(watch_loop_lag("work")) if work.threaded else None
    yield
    if on_work is not None:
        await work.cancel_task(on_work)
    for watcher in watchers:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _background(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    scheduler = app[SCHEDULER]
    settings = runtime.settings
    if runtime.leadership is None:
        runtime.leadership = Leadership(
            runtime.engine,
            holder=replica_id(settings.wavegate_replica_id, port=settings.port),
            on_elected=runtime.wake_outbox,
        )
    # Outbox claims and marks carry the lease's epoch (bot/outbox.py).
    app[DELIVERY].leadership = runtime.leadership
    # The lease is renewed from this (the HTTP) loop, its one UPDATE in a worker thread: a work
    # loop busy with 50 commands cannot delay a renewal until the lease runs out.
    async with campaign(runtime.leadership):
        # The scheduler (its jobs, the poll loop) and the outbox worker run on the work loop.
        await runtime.work.call(scheduler.start)
        worker = await runtime.work.start_task(
            app[DELIVERY].run(runtime.outbox_ready, leading=runtime.leads)
        )
        yield
        # Work acknowledged but not finished (a command waiting on the deploy system) gets a
        # bounded time to finish before the process exits.
        await app[LISTENERS].drain(SHUTDOWN_GRACE)
        await runtime.work.cancel_task(worker)
        await runtime.work.call(lambda: scheduler.shutdown(wait=False))
