"""Bolt listeners for incident interactivity: the declare form, checklist ticks, Resume buttons,
the "Add as follow-up" message shortcut, and pinned messages (the `pin_added` and
`reaction_added` events) joining the timeline.

They only translate Slack payloads to requests and replies; the rules are in
`commands/incident/actions.py`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.requests import NO_USER, Listeners, action_of, id_of
from commands.incident import actions, followups
from commands.incident.views import DECLARE_FORM, RESUME_ACTION, TICK_ACTION

log = logging.getLogger(__name__)
PUSHPIN = "pushpin"


def register(app: AsyncApp, listeners: Listeners) -> None:
    runtime = listeners.runtime

    # -------------------------------------------------------- the declare form

    async def on_declare_form(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        with runtime.unit() as ctx:
            args, errors = actions.check_form(ctx, view)
        if args is None:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user = id_of(body, "user") or ""

        async def declare() -> None:
            request = await listeners.request(
                user_id=user, command="/incident", text="declare", channel_id=None
            )
            with runtime.unit() as ctx:
                reply = await actions.declare_from_form(ctx, args, request)
            try:
                # A form has no response URL: the declarer hears back in a direct message.
                await client.chat_postMessage(channel=user, text=reply.text)
            except SlackApiError as exc:
                log.warning("telling %s about the form failed: %s", user, exc.response.get("error"))

        listeners.after_ack(declare())

    app.view(DECLARE_FORM)(on_declare_form)

    # -------------------------------------------------------- buttons

    async def on_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action = action_of(body)
        action_id, value = str(action.get("action_id", "")), action.get("value")
        user = id_of(body, "user")

        async def press() -> None:
            if user is None:
                await respond(text=NO_USER, response_type="ephemeral", replace_original=False)
                return
            request = await listeners.request(
                user_id=user, command="/incident", text="", channel_id=id_of(body, "channel")
            )
            with runtime.unit() as ctx:
                reply = await actions.press(
                    request, ctx, action_id, value if isinstance(value, str) else ""
                )
            if reply is not None:
                await respond(text=reply.text, response_type="ephemeral", replace_original=False)

        listeners.after_ack(press())

    for prefix in (TICK_ACTION, RESUME_ACTION):
        app.action(re.compile(rf"^{re.escape(prefix)}(\.\d+|\.all)?$"))(on_button)

    # -------------------------------------------------------- the message shortcut

    async def on_add_followup(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        message = body.get("message") or {}
        channel = str((body.get("channel") or {}).get("id", ""))

        async def add() -> None:
            request = await listeners.request(
                user_id=str((body.get("user") or {}).get("id", "")),
                command="/incident",
                text="followup",
                channel_id=channel or None,
            )
            with runtime.unit() as ctx:
                reply = await followups.add_from_message(
                    ctx,
                    request,
                    channel=channel,
                    ts=str(message.get("ts", "")),
                    text=message.get("text"),
                )
            await respond(text=reply.text, response_type="ephemeral", replace_original=False)

        listeners.after_ack(add())

    app.shortcut(followups.SHORTCUT)(on_add_followup)

    # -------------------------------------------------------- pinned messages

    async def pin(channel: str, ts: str, text: str | None, author: str | None, actor: str) -> None:
        with runtime.unit() as ctx:
            await actions.pin(ctx, channel=channel, ts=ts, text=text, author=author, actor=actor)

    async def on_pin_added(ack: AsyncAck, event: dict[str, Any]) -> None:
        await ack()
        item = event.get("item") or {}
        message = item.get("message") or {}
        channel = event.get("channel_id") or item.get("channel")
        ts = message.get("ts")
        if item.get("type") != "message" or not channel or not ts:
            return
        actor = str(event.get("user", ""))
        listeners.after_ack(
            pin(str(channel), str(ts), message.get("text"), message.get("user"), actor)
        )

    async def on_reaction_added(ack: AsyncAck, event: dict[str, Any]) -> None:
        await ack()
        item = event.get("item") or {}
        if event.get("reaction") != PUSHPIN or item.get("type") != "message":
            return
        channel, ts = str(item.get("channel", "")), str(item.get("ts", ""))
        if not channel or not ts:
            return

        async def pin_reacted() -> None:
            with runtime.unit() as ctx:
                if not actions.is_incident_channel(ctx, channel) or ctx.ports.chat is None:
                    return
                chat = ctx.ports.chat
            text = await chat.message_text(channel, ts)
            await pin(channel, ts, text, event.get("item_user"), str(event.get("user", "")))

        listeners.after_ack(pin_reacted())

    app.event("pin_added")(on_pin_added)
    app.event("reaction_added")(on_reaction_added)
