"""Bolt listeners for the rollout buttons: Promote, Pause, Resume, Rollback, Confirm, Retry.

Each press is acknowledged at once; the work (which may call the actuator) runs after the ack
and answers the presser through `respond()`, ephemerally, leaving the original message alone.
The rules are in `commands/wave/buttons.py`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.slack.render import slack_payload
from bot.slack.requests import Listeners
from commands.wave.buttons import ACTIONS, press


def register(app: AsyncApp, listeners: Listeners) -> None:
    runtime = listeners.runtime

    async def on_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]

        async def run() -> None:
            request = await listeners.request(
                user_id=str((body.get("user") or {}).get("id", "")),
                command=str(action.get("action_id", "")),
                text="",
                channel_id=(body.get("channel") or {}).get("id"),
            )
            with runtime.unit() as ctx:
                reply = await press(
                    request, ctx, str(action.get("action_id", "")), str(action.get("value", ""))
                )
            await respond(**slack_payload(reply), replace_original=False)

        listeners.after_ack(run())

    for action_id in ACTIONS:
        app.action(action_id)(on_button)
