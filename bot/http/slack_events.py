"""`POST /slack/events`: slash commands, interactivity and events, one URL; Bolt handles all but
the commands that answer in the ack."""

from __future__ import annotations

import hmac
import json
import time
from hashlib import sha256
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncBoltRequest, AsyncRespond
from slack_bolt.response import BoltResponse

from bot.http.api import MAX_JSON_DEPTH, read_raw, too_deep
from bot.http.keys import BOLT, LISTENERS, RUNTIME
from bot.slack.app import on_slack_error
from bot.slack.commands import (
    answer_after_ack,
    answer_in_ack,
    routed_command,
    slash_command_fields,
)

routes = web.RouteTableDef()
SIGNATURE_WINDOW = 5 * 60  # seconds either way (slack_sdk's)


def _refused(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def signed_by_slack(secret: str, raw: bytes, request: web.Request) -> bool:
    """Slack's HMAC (`v0=` SHA-256 of `v0:TIMESTAMP:BODY`) over the bytes as they arrived,
    within 5 minutes either way, as slack_sdk's SignatureVerifier checks it; Slack signs UTF-8
    text, so bytes that are not UTF-8 are refused too."""
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature")
    if signature is None or not signature.isascii():
        return False
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > SIGNATURE_WINDOW:
        return False
    digest = hmac.new(secret.encode(), b"v0:%s:%s" % (timestamp.encode(), raw), sha256)
    if not hmac.compare_digest(f"v0={digest.hexdigest()}", signature):
        return False
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def malformed(text: str, content_type: str) -> str | None:
    """What is wrong with a signed body Bolt would fail on: an event is a JSON object, and so is
    the `payload` field of an interaction (buttons, forms); None when it is well formed."""
    if content_type == "application/json":
        documents = [text]
    else:
        documents = [value for key, value in parse_qsl(text) if key == "payload"]
    for document in documents:
        if too_deep(document):
            return f"the body nests deeper than {MAX_JSON_DEPTH} levels"
        try:
            parsed = json.loads(document)
        except json.JSONDecodeError:
            return "the body is not valid JSON"
        if not isinstance(parsed, dict):
            return "the body must be a JSON object"
    return None


@routes.post("/slack/events")
async def slack_events(request: web.Request) -> web.Response:
    """The signature is checked on the raw bytes before anything reads them; only a body
    Slack signed is decoded, parsed and handed to Bolt."""
    secret = request.app[RUNTIME].settings.slack_signing_secret
    if secret is None:
        # Socket Mode without a signing secret: nothing over HTTP can be verified (an empty key
        # is one anybody can sign with), so nothing is accepted.
        return _refused(
            401, "Slack requests over HTTP are off: set SLACK_SIGNING_SECRET to accept them"
        )
    raw = await read_raw(request)
    if isinstance(raw, web.Response):
        return raw
    if not signed_by_slack(secret, raw, request):
        return _refused(401, "invalid or stale Slack signature")
    text = raw.decode()  # signed, so UTF-8
    listeners = request.app[LISTENERS]
    command = (
        slash_command_fields(text)
        if listeners.token_checked and request.content_type == "application/x-www-form-urlencoded"
        else None
    )
    if command is not None:
        # The fast path: a command is parsed and routed once here and acknowledged without
        # Bolt's request, middleware, listener matching or kwargs: with its answer when it
        # answers in the ack, else empty, its work handed to the work loop (bot/work.py).
        started = time.perf_counter()
        try:
            routed = await routed_command(listeners, command)
            if routed.answers_in_ack:
                answer = await answer_in_ack(listeners, routed, started)
                return web.Response(
                    body=answer.body, content_type="application/json", charset="utf-8"
                )
            respond = AsyncRespond(response_url=command.get("response_url"))
            answer_after_ack(listeners, routed, respond, started)
            return web.Response(text="")
        except Exception as error:
            # As Bolt answers a listener that raised: its error handler's answer, or a 500.
            return await to_aiohttp_response(
                await on_slack_error(error) or BoltResponse(status=500, body="")
            )
    elif (problem := malformed(text, request.content_type)) is not None:
        return _refused(400, problem)
    bolt_request = AsyncBoltRequest(
        body=text,
        query=request.query_string,
        headers=request.headers,  # type: ignore[arg-type]
    )
    bolt_response = await request.app[BOLT].async_dispatch(bolt_request)
    return await to_aiohttp_response(bolt_response)
