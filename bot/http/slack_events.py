"""`POST /slack/events`: slash commands, interactivity and events, one URL, handed to Bolt."""

from __future__ import annotations

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.http.keys import BOLT, RUNTIME

routes = web.RouteTableDef()


@routes.post("/slack/events")
async def slack_events(request: web.Request) -> web.Response:
    """Bolt checks the signature first (and answers 401 to a bad or stale one)."""
    if request.app[RUNTIME].settings.slack_signing_secret is None:
        # Socket Mode without a signing secret: nothing over HTTP can be verified (an empty key
        # is one anybody can sign with), so nothing is accepted.
        return web.json_response(
            {"error": "Slack requests over HTTP are off: set SLACK_SIGNING_SECRET to accept them"},
            status=401,
        )
    bolt_response = await request.app[BOLT].async_dispatch(await to_bolt_request(request))
    return await to_aiohttp_response(bolt_response)
