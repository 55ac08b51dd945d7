"""A bare slack-bolt AsyncApp on aiohttp that acks every slash command empty: the ack baseline.

    PORT=3001 python -m tests.perf.bare_bolt [--process-before-response]

PORT, SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN and SLACK_API_URL come from the environment, as for
`wavegate serve`; it listens on 127.0.0.1 only and is stopped with SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import re

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

BOLT = web.AppKey("bolt", AsyncApp)


def create_app(*, process_before_response: bool) -> web.Application:
    client = AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
    )
    # Bolt's defaults otherwise, so the figure is what a plain Bolt app costs.
    bolt = AsyncApp(
        client=client,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=process_before_response,
    )

    async def on_command(ack: AsyncAck) -> None:
        await ack()

    # Every command the benchmark sends (/ops, /wave, /ready, …) gets the same empty ack.
    bolt.command(re.compile(r"^/.+"))(on_command)

    async def slack_events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app[BOLT] = bolt
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.bare_bolt", description=__doc__)
    parser.add_argument("--process-before-response", action="store_true")
    args = parser.parse_args()
    app = create_app(process_before_response=args.process_before_response)
    # aiohttp's access log stays at its default, as in a plain Bolt deployment.
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)


if __name__ == "__main__":
    main()
