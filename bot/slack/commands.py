"""Slash commands: `/ops` and its aliases, each routed once and answered in the ack or after it."""

from __future__ import annotations

import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.slack.render import slack_payload
from bot.slack.requests import Listeners
from bot.telemetry import observe_ack
from commands.router import ALIASES, ROOT, route

SLASH_COMMANDS = [ROOT, *ALIASES]


def typed_text(text: str) -> str:
    """What the person typed. Slack sends `&`, `<` and `>` of a command's text as `&amp;`,
    `&lt;` and `&gt;`; the rules see the characters, and every view escapes them again on the
    way out (commands.text.escape), so `a < b` reads `a < b` in Slack instead of `a &lt; b`."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def register(app: AsyncApp, listeners: Listeners) -> None:
    runtime = listeners.runtime

    async def on_slash_command(
        ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]
    ) -> None:
        """A read-only, quick command answers inside the acknowledgement; anything else
        acknowledges at once and answers through `respond()`."""
        started = time.perf_counter()
        request = await listeners.request(
            user_id=str(command.get("user_id", "")),
            command=str(command.get("command", ROOT)),
            text=typed_text(str(command.get("text", ""))),
            channel_id=command.get("channel_id"),
            trigger_id=command.get("trigger_id"),
        )
        routed = route(request)
        if routed.answers_in_ack:
            reply = await runtime.run_command(routed)
            await ack(**slack_payload(reply))
            observe_ack(time.perf_counter() - started)
            return
        await ack()
        observe_ack(time.perf_counter() - started)

        async def answer() -> None:
            reply = await runtime.run_command(routed)
            await respond(**slack_payload(reply))

        listeners.after_ack(answer())

    for name in SLASH_COMMANDS:
        app.command(name)(on_slash_command)
