"""Bolt listeners for the rollout buttons: Promote, Pause, Resume, Rollback, Confirm, Retry.

Each press is acknowledged at once; the work (which may call the actuator) runs after the ack
and answers the presser through `respond()`, ephemerally, leaving the original message alone.
The rules are in `commands/wave/buttons.py`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.slack.render import slack_payload
from bot.slack.requests import NO_USER, Listeners, action_of, id_of
from commands.wave.buttons import ACTIONS, press


def register(app: AsyncApp, listeners: Listeners) -> None:
    runtime = listeners.runtime

    async def on_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action = action_of(body)
        action_id, value = str(action.get("action_id", "")), action.get("value")
        user = id_of(body, "user")

        async def run() -> None:
            if user is None:
                await respond(text=NO_USER, response_type="ephemeral", replace_original=False)
                return
            request = await listeners.request(
                user_id=user, command=action_id, text="", channel_id=id_of(body, "channel")
            )
            with runtime.unit() as ctx:
                reply = await press(
                    request, ctx, action_id, value if isinstance(value, str) else ""
                )
            await respond(**slack_payload(reply), replace_original=False)

        listeners.after_ack(run())

    for action_id in ACTIONS:
        app.action(action_id)(on_button)
