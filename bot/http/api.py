"""What every `/api/v1/*` handler shares: bearer auth, JSON bodies, `{"error": …}`, times."""

from __future__ import annotations

import hmac
import itertools
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from bot.http.keys import RUNTIME
from commands.core import CommandError, Conflict, Forbidden, GateClosed, NotFound

B = TypeVar("B", bound=BaseModel)

# Bodies wavegate accepts at most (aiohttp's `client_max_size`): an Alertmanager group of 1,000
# alerts is well under it, and nothing larger is read into memory.
MAX_BODY_BYTES = 1024 * 1024
# No body we read nests deeper than a few levels; json.loads would recurse to ~1,000 and fail.
MAX_JSON_DEPTH = 32
# A string, to its closing quote or the end of an unterminated one. Possessive, so a scan is
# linear whatever the body.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?')
_NESTING = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, as every API time is: 2026-11-27T10:00:00Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


STATUS_OF: dict[type[CommandError], int] = {
    NotFound: 404,
    Conflict: 409,
    GateClosed: 409,
    Forbidden: 403,
}


def error_for(err: CommandError) -> web.Response:
    return error(STATUS_OF.get(type(err), 400), err.message)


def check_auth(request: web.Request) -> web.Response | None:
    token = request.app[RUNTIME].settings.wavegate_api_token
    if token is None:
        return error(403, "the HTTP API is disabled: set WAVEGATE_API_TOKEN to enable it")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return error(401, "missing bearer token: send Authorization: Bearer <WAVEGATE_API_TOKEN>")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return error(401, "invalid bearer token")
    return None


@web.middleware
async def api_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bearer auth for /api/; every error there is `{"error": "…"}`."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    if (refused := check_auth(request)) is not None:
        return refused
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, exc.reason or "error")


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests deeper than `limit`, found without recursing (and without
    counting brackets inside strings)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    outside_strings = _JSON_STRING.sub("", text).encode()
    steps = [_NESTING[byte] for byte in outside_strings if byte in _NESTING]
    return max(itertools.accumulate(steps), default=0) > limit


async def read_raw(request: web.Request) -> bytes | web.Response:
    """The body's bytes, or 413 when it is larger than MAX_BODY_BYTES."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")


async def read_body(request: web.Request, model: type[B]) -> B | web.Response:
    raw = await read_raw(request)
    if isinstance(raw, web.Response):
        return raw
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return error(400, "the body is not valid JSON")
    if too_deep(text):
        return error(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text or "null")
    except json.JSONDecodeError:
        return error(400, "the body is not valid JSON")
    if not isinstance(data, dict):
        return error(400, "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        return error(400, f"{where}: {message}")
