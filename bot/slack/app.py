"""The Bolt app: signature-checked Slack requests in, every listener family registered on it.

Listeners are the only code that calls `ack`/`respond`; each family registers its own with one
`register(app, listeners)` function.
"""

from __future__ import annotations

from typing import NamedTuple

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Runtime
from bot.slack import commands, home, incident_actions, wave_buttons
from bot.slack.requests import GroupMembership, Listeners


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
    listeners = Listeners(runtime, GroupMembership(client))
    publisher = home.HomePublisher(listeners, client)
    # First, so a press on the App Home (no response URL) is answered by the Home's listener.
    home.register(app, listeners, publisher)
    for family in (commands, wave_buttons, incident_actions):
        family.register(app, listeners)
    return SlackApp(app, listeners, publisher)
