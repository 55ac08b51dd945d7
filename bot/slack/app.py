"""The Bolt app: signature-checked Slack requests in, every listener family registered on it.

Listeners are the only code that calls `ack`/`respond`; each family registers its own with one
`register(app, listeners)` function.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Runtime
from bot.slack import commands, incident_actions, wave_buttons
from bot.slack.requests import GroupMembership, Listeners


def build_bolt_app(runtime: Runtime, client: AsyncWebClient) -> tuple[AsyncApp, Listeners]:
    app = AsyncApp(
        client=client,
        signing_secret=runtime.settings.slack_signing_secret or "",
        # Always on: Bolt skips it only for requests that arrived over Socket Mode.
        request_verification_enabled=True,
        # Run the ack function inline rather than polling for ack() every 10 ms.
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
    listeners = Listeners(runtime, GroupMembership(client))
    for family in (commands, wave_buttons, incident_actions):
        family.register(app, listeners)
    return app, listeners
