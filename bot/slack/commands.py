"""Slash commands: `/ops` and its aliases, each routed once and answered in the ack or after it.

Over HTTP, once Bolt has authorized the token, a command never reaches Bolt:
bot/http/slack_events.py answers it with `answer_in_ack` or acks it empty and hands it to
`answer_after_ack`, the same functions Bolt's listener calls, so both paths give the same
answer. The first command over HTTP, and every command over Socket Mode, go through Bolt.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.slack.ack_cache import Answer, ack_cache
from bot.slack.render import slack_payload
from bot.slack.requests import Listeners
from bot.telemetry import observe_ack
from commands.router import ALIASES, ROOT, Routed, route

SLASH_COMMANDS = [ROOT, *ALIASES]
_REGISTERED = frozenset(SLASH_COMMANDS)


def typed_text(text: str) -> str:
    """What the person typed. Slack sends `&`, `<` and `>` of a command's text as `&amp;`,
    `&lt;` and `&gt;`; the rules see the characters, and every view escapes them again on the
    way out (commands.text.escape), so `a < b` reads `a < b` in Slack instead of `a &lt; b`."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slash_command_fields(text: str) -> dict[str, str] | None:
    """The fields of a form-encoded body when Bolt would hand it to our command listener, parsed
    as Bolt parses it (slack_bolt.request.internals.parse_body: every field, blanks kept, the
    last of a repeated one); None for anything else (a `payload` interaction, an `ssl_check`,
    a command nobody registered), which is left to Bolt."""
    if text.startswith("{") or "payload" in text:
        return None
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if fields.get("command") not in _REGISTERED or "ssl_check" in fields:
        return None
    return fields


async def routed_command(listeners: Listeners, command: Mapping[str, Any]) -> Routed:
    """The one way a slash command's fields become a routed command, for both paths."""
    request = await listeners.request(
        user_id=str(command.get("user_id", "")),
        command=str(command.get("command", ROOT)),
        text=typed_text(str(command.get("text", ""))),
        channel_id=command.get("channel_id"),
        trigger_id=command.get("trigger_id"),
    )
    return route(request)


async def answer_in_ack(listeners: Listeners, routed: Routed, started: float) -> Answer:
    """Run a command that answers in the ack (or take its kept answer: bot/slack/ack_cache.py);
    the ack's payload and body, with its latency observed."""
    runtime = listeners.runtime
    answer = await ack_cache(runtime).answer(runtime, routed)
    observe_ack(time.perf_counter() - started)
    return answer


def answer_after_ack(
    listeners: Listeners, routed: Routed, respond: AsyncRespond, started: float
) -> None:
    """Once the empty ack is on its way: the command runs on the work loop (bot/work.py) and
    answers through `respond()`; the ack's latency observed."""
    observe_ack(time.perf_counter() - started)

    async def answer() -> None:
        reply = await listeners.runtime.run_command(routed)
        await respond(**slack_payload(reply))

    listeners.after_ack(answer())


def register(app: AsyncApp, listeners: Listeners) -> None:

    async def on_slash_command(
        ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]
    ) -> None:
        """A read-only, quick command answers inside the acknowledgement; anything else
        acknowledges at once and answers through `respond()`."""
        # Reaching a listener means Bolt has authorized a request (its auth.test): from now on
        # the HTTP fast path may answer commands without Bolt.
        listeners.token_checked = True
        started = time.perf_counter()
        routed = await routed_command(listeners, command)
        if routed.answers_in_ack:
            await ack(**(await answer_in_ack(listeners, routed, started)).payload)
            return
        await ack()
        answer_after_ack(listeners, routed, respond, started)

    for name in SLASH_COMMANDS:
        app.command(name)(on_slash_command)
