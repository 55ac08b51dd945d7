"""`GET /healthz`, `GET /readyz` and `GET /metrics`: alive, ready, and how it is doing."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.engine import Engine

from bot.http.keys import RUNTIME, SCHEDULER
from bot.telemetry import exposition
from storage.db import schema_is_current

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _schema_is_current(engine: Engine) -> bool:
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    return schema_is_current(engine)


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    problems: list[str] = []
    try:
        # Off the HTTP loop: a database slow to answer must not delay acks and /healthz.
        if not await asyncio.to_thread(_schema_is_current, runtime.engine):
            problems.append("database schema is not at head: run `wavegate db upgrade`")
    except sa.exc.SQLAlchemyError as exc:
        problems.append(f"database unreachable: {type(exc).__name__}")
    if not request.app[SCHEDULER].running:
        problems.append("scheduler is not running")
    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    # The database read runs off the event loop, so a slow scrape never delays an ack.
    body = await asyncio.to_thread(exposition, runtime.engine, leading=runtime.leads())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
