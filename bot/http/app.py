"""The aiohttp application factory: routes, the Bolt app, and the background work it runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

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
    runtime: Runtime, *, client: AsyncWebClient | None = None, background: bool = True
) -> web.Application:
    """The service. `background=False` leaves out the scheduler and outbox worker (tests that
    drive them by hand)."""
    client = client or slack_client(runtime.settings)
    wire(runtime, chat=SlackIncidentChat(client))
    app = web.Application(middlewares=[api_middleware], client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    app[BOLT], app[LISTENERS], app[HOME] = build_bolt_app(runtime, client)
    app[DELIVERY] = OutboxDelivery(runtime.engine, client, runtime.clock)
    app[SCHEDULER] = build_scheduler(runtime)
    for module in (slack_events, health, checklist, rollouts, incidents):
        app.add_routes(module.routes)
    if background:
        app.cleanup_ctx.append(_loop_lag)
        app.cleanup_ctx.append(_background)
    app.on_cleanup.append(_close_shared)
    return app


async def _close_shared(app: web.Application) -> None:
    """The metric sources' shared HTTP session closes with the app (it opens on first use);
    the App Home stops refreshing."""
    await app[HOME].stop()
    await app[RUNTIME].source_http.close()


async def _loop_lag(_: web.Application) -> AsyncIterator[None]:
    """`wavegate_event_loop_lag_seconds`: how long anything blocked the event loop."""
    watcher = asyncio.create_task(watch_loop_lag())
    yield
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
            on_elected=runtime.outbox_ready.set,
        )
    # Outbox claims and marks carry the lease's epoch (bot/outbox.py).
    app[DELIVERY].leadership = runtime.leadership
    async with campaign(runtime.leadership):
        scheduler.start()
        worker = asyncio.create_task(app[DELIVERY].run(runtime.outbox_ready, leading=runtime.leads))
        yield
        # Work acknowledged but not finished (a command waiting on the deploy system) gets a
        # bounded time to finish before the process exits.
        await app[LISTENERS].drain(SHUTDOWN_GRACE)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        scheduler.shutdown(wait=False)
