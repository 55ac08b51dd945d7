"""The Bolt app: signature-checked Slack requests in, every listener family registered on it.

Listeners are the only code that calls `ack`/`respond`; each family registers its own with one
`register(app, listeners)` function.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Runtime
from bot.slack import commands, home, incident_actions, wave_buttons
from bot.slack.requests import GroupMembership, Listeners

log = logging.getLogger(__name__)

UNREACHABLE = (
    "wavegate cannot reach Slack's API right now, so this was not done; try again in a minute. "
    "Changes already made are kept, and their posts go out once Slack answers again."
)


def _unreachable(error: BaseException) -> bool:
    """Slack's API did not answer: no connection, a timeout (not a refusal, which is an answer)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, aiohttp.ClientConnectionError | asyncio.TimeoutError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def on_slack_error(error: Exception) -> BoltResponse | None:
    """Bolt's one error handler. With Slack's API out of reach (Bolt's own auth.test, a user
    group lookup) the person still gets an answer and Slack a 200, not a 500 and a traceback.
    Anything else is a bug: logged in full, and Slack gets the 500."""
    if _unreachable(error):
        log.warning("Slack's API is unreachable: %s", error or type(error).__name__)
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": UNREACHABLE})
    log.error("a Slack request failed", exc_info=error)
    return None


class SlackApp(NamedTuple):
    bolt: AsyncApp
    listeners: Listeners
    home: home.HomePublisher


def build_bolt_app(runtime: Runtime, client: AsyncWebClient) -> SlackApp:
    app = AsyncApp(
        # Bolt is given the token, not the client: given a client it still reads
        # SLACK_BOT_TOKEN from the environment and warns at every start that it is unused.
        token=client.token,
        signing_secret=runtime.settings.slack_signing_secret or "",
        # Always on: Bolt skips it only for requests that arrived over Socket Mode.
        request_verification_enabled=True,
        # Run the ack function inline rather than polling for ack() every 10 ms.
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
    # The clients Bolt hands to listeners are made like its own: reach the same Web API.
    app.client.base_url = client.base_url
    app.error(on_slack_error)
    listeners = Listeners(runtime, GroupMembership(client))
    publisher = home.HomePublisher(listeners, client)
    # First, so a press on the App Home (no response URL) is answered by the Home's listener.
    home.register(app, listeners, publisher)
    for family in (commands, wave_buttons, incident_actions):
        family.register(app, listeners)
    return SlackApp(app, listeners, publisher)
