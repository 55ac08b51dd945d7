"""The aiohttp application: Slack events, health, readiness and the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import sqlalchemy as sa
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import api, api_incidents, api_rollouts
from bot.api import RUNTIME
from bot.incident_chat import SlackIncidentChat
from bot.leader import campaign
from bot.metrics import metrics_endpoint
from bot.outbox import OutboxDelivery
from bot.poller import ensure_services
from bot.runtime import Runtime
from bot.scheduler import build_scheduler
from bot.slack import build_bolt_app
from bot.sources.http import close_sources
from storage.db import schema_is_current

log = logging.getLogger(__name__)

BOLT = web.AppKey("bolt", AsyncApp)
SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)
DELIVERY = web.AppKey("delivery", OutboxDelivery)


def slack_client(runtime: Runtime) -> AsyncWebClient:
    settings = runtime.settings
    return AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)


async def slack_events(request: web.Request) -> web.Response:
    """Slash commands, interactivity and events: one URL. Bolt checks the signature first."""
    if request.app[RUNTIME].settings.slack_signing_secret is None:
        # Socket Mode without a signing secret: nothing over HTTP can be verified (an empty key
        # is one anybody can sign with), so nothing is accepted.
        return web.json_response(
            {"error": "Slack requests over HTTP are off: set SLACK_SIGNING_SECRET to accept them"},
            status=401,
        )
    bolt_response = await request.app[BOLT].async_dispatch(await to_bolt_request(request))
    return await to_aiohttp_response(bolt_response)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    problems: list[str] = []
    try:
        with runtime.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        if not schema_is_current(runtime.engine):
            problems.append("database schema is not at head: run `wavegate db upgrade`")
    except sa.exc.SQLAlchemyError as exc:
        problems.append(f"database unreachable: {type(exc).__name__}")
    if not request.app[SCHEDULER].running:
        problems.append("scheduler is not running")
    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


def create_app(
    runtime: Runtime, *, client: AsyncWebClient | None = None, background: bool = True
) -> web.Application:
    """The service. `background=False` leaves out the scheduler and outbox worker (tests that
    drive them by hand)."""
    client = client or slack_client(runtime)
    app = web.Application(middlewares=[api.api_middleware])
    app[RUNTIME] = runtime
    runtime.services.setdefault("chat", SlackIncidentChat(client))
    ensure_services(runtime)
    app[BOLT] = build_bolt_app(runtime, client)
    app[DELIVERY] = OutboxDelivery(runtime.engine, client, runtime.clock)
    app[SCHEDULER] = build_scheduler(runtime)
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.add_routes(api.routes)
    app.add_routes(api_incidents.routes)
    app.add_routes(api_rollouts.routes)
    if background:
        app.cleanup_ctx.append(_background)
    app.on_cleanup.append(_close_sources)
    return app


async def _close_sources(app: web.Application) -> None:
    """The metric sources' shared HTTP session closes with the app (it opens on first use)."""
    await close_sources(app[RUNTIME])


async def _background(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    scheduler = app[SCHEDULER]
    async with campaign(runtime) as leadership:
        scheduler.start()
        worker = asyncio.create_task(
            app[DELIVERY].run(runtime.outbox_ready, leading=leadership.is_leading)
        )
        yield
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        scheduler.shutdown(wait=False)
