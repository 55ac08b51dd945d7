"""Bolt listeners for the rollout buttons: Promote, Pause, Resume, Rollback, Confirm, Retry.

Each press is acknowledged at once; the work (which may call the actuator) runs after the ack
and answers the presser through `respond()`, ephemerally, leaving the original message alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlmodel import Session

from bot.render import slack_payload
from bot.runtime import Runtime
from bot.slack import make_request
from commands.core import Reply
from commands.wave.buttons import ACTIONS, press


async def press_button(runtime: Runtime, body: dict[str, Any], action_id: str) -> Reply:
    """Run one pressed button as the user who pressed it."""
    action = next(a for a in body.get("actions", []) if a.get("action_id") == action_id)
    channel = (body.get("channel") or {}).get("id")
    request = await make_request(
        runtime,
        user_id=str((body.get("user") or {}).get("id", "")),
        command=action_id,
        text="",
        channel_id=channel,
    )
    with Session(runtime.engine, expire_on_commit=False) as session:
        reply = await press(request, runtime.context(session), action_id, str(action["value"]))
    runtime.outbox_ready.set()
    return reply


def register(app: AsyncApp, runtime: Runtime) -> None:
    async def acknowledge(ack: AsyncAck) -> None:
        await ack()

    def runner(action_id: str) -> Callable[..., Awaitable[None]]:
        # Bolt passes listener arguments by name, so the action id is bound here, not as one.
        async def run(body: dict[str, Any], respond: AsyncRespond) -> None:
            reply = await press_button(runtime, body, action_id)
            await respond(**slack_payload(reply), replace_original=False)

        return run

    for action_id in ACTIONS:
        app.action(action_id)(ack=acknowledge, lazy=[runner(action_id)])
