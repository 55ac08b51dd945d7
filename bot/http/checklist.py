"""`POST /api/v1/releases` and `POST /api/v1/checks`: CI registers candidates and reports checks."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from bot.http.api import Body, error_for, read_body
from bot.http.keys import RUNTIME
from commands.core import CommandError
from commands.ready.checklist import record_ci_result, register_release
from storage.models import CheckResult, CheckStatus, Release

API_ACTOR = "api"

routes = web.RouteTableDef()


class NewRelease(Body):
    version: str = Field(min_length=1, max_length=100)


class CheckReport(Body):
    release: str = Field(min_length=1, max_length=100)
    item: str = Field(min_length=1, max_length=64)
    check: str | None = Field(default=None, max_length=64)
    status: Literal["passed", "failed"]
    evidence: str | None = Field(default=None, max_length=2000)


@routes.post("/api/v1/releases")
async def post_release(request: web.Request) -> web.Response:
    body = await read_body(request, NewRelease)
    if isinstance(body, web.Response):
        return body
    runtime = request.app[RUNTIME]

    def register() -> Release:
        with runtime.unit() as ctx:
            return register_release(body.version, ctx, actor=API_ACTOR)

    try:
        # On the work loop (bot/work.py), like every unit of work: the HTTP loop stays free.
        release = await runtime.work.call(register)
    except CommandError as err:
        return error_for(err)
    return web.json_response(
        {"id": release.id, "version": release.version, "state": release.state}, status=201
    )


@routes.post("/api/v1/checks")
async def post_check(request: web.Request) -> web.Response:
    body = await read_body(request, CheckReport)
    if isinstance(body, web.Response):
        return body
    runtime = request.app[RUNTIME]

    def record() -> CheckResult:
        with runtime.unit() as ctx:
            return record_ci_result(
                body.release,
                body.item,
                body.check,
                CheckStatus(body.status),
                ctx,
                actor=API_ACTOR,
                evidence=body.evidence,
            )

    try:
        result = await runtime.work.call(record)
    except CommandError as err:
        return error_for(err)
    return web.json_response(
        {
            "id": result.id,
            "release": body.release,
            "item": result.item,
            "check": result.check or None,
            "status": result.status,
        },
        status=201,
    )
