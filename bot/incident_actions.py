"""Incident interactivity: the declare form, checklist ticks, Resume buttons, and pinned
messages (the `pin_added` and `reaction_added` events) joining the timeline."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session

from bot.runtime import Runtime
from bot.slack import make_request
from commands.access import require
from commands.core import Context, Reply, Request
from commands.incident.declare import declare_incident
from commands.incident.lifecycle import pin_message, resume_paused_rollout, tick_step
from commands.incident.parse import DeclareArgs, parse_form
from commands.incident.ports import IncidentChat
from commands.incident.views import DECLARE_FORM, RESUME_ACTION, TICK_ACTION
from commands.unit import perform as perform_unit
from storage.incidents import incident_in_channel
from storage.releases import get_release

log = logging.getLogger(__name__)
T = TypeVar("T")
PUSHPIN = "pushpin"


async def perform(
    runtime: Runtime, request: Request, work: Callable[[Context], Awaitable[T]]
) -> T | Reply:
    """One unit of work for an interaction; an error comes back as a Reply."""
    with Session(runtime.engine, expire_on_commit=False) as session:
        result = await perform_unit(
            request.user_id, runtime.context(session), work, action="incident"
        )
    runtime.outbox_ready.set()
    return result


def _button_value(body: dict[str, Any]) -> dict[str, Any] | None:
    try:
        value = json.loads(body["actions"][0]["value"])
    except (KeyError, IndexError, TypeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _form_fields(view: dict[str, Any]) -> dict[str, str | None]:
    values: dict[str, Any] = view.get("state", {}).get("values", {})

    def field(block: str) -> str | None:
        element = values.get(block, {}).get("value", {})
        if element.get("selected_option"):
            return str(element["selected_option"].get("value"))
        value = element.get("value")
        return str(value) if value is not None else None

    return {name: field(name) for name in ("class", "severity", "summary", "release")}


def register(app: AsyncApp, runtime: Runtime) -> None:
    # -------------------------------------------------------- the declare form

    def read_form(view: dict[str, Any]) -> tuple[DeclareArgs | None, dict[str, str]]:
        fields = _form_fields(view)
        return parse_form(
            runtime.policy,
            incident_class=fields["class"],
            severity=fields["severity"],
            summary=fields["summary"],
            release=fields["release"],
        )

    async def check_form(ack: AsyncAck, view: dict[str, Any]) -> None:
        args, errors = read_form(view)
        if args is not None and args.release:
            with Session(runtime.engine) as session:
                if get_release(args.release, session=session) is None:
                    errors["release"] = f"No release {args.release!r} is registered"
        if errors:
            await ack(response_action="errors", errors=errors)
        else:
            await ack()

    async def declare_from_form(
        body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        args, _ = read_form(view)
        if args is None:
            return  # check_form refused it already
        user = str(body["user"]["id"])
        request = await make_request(
            runtime, user_id=user, command="/incident", text="declare", channel_id=None
        )

        async def work(ctx: Context) -> Reply:
            require(ctx.policy, "incident.declare", request, subject="incident:new")
            incident = await declare_incident(ctx, args, actor=user)
            return Reply(f"Declared incident #{incident.id} in <#{incident.channel}>.")

        reply = await perform(runtime, request, work)
        assert isinstance(reply, Reply)
        try:
            # A form has no response URL: the declarer hears back in a direct message.
            await client.chat_postMessage(channel=user, text=reply.text)
        except SlackApiError as exc:
            log.warning("telling %s about the form failed: %s", user, exc.response.get("error"))

    app.view(DECLARE_FORM)(ack=check_form, lazy=[declare_from_form])

    # -------------------------------------------------------- buttons

    async def ack_only(ack: AsyncAck) -> None:
        await ack()

    async def button_request(body: dict[str, Any]) -> Request:
        channel = (body.get("channel") or {}).get("id")
        return await make_request(
            runtime,
            user_id=str(body["user"]["id"]),
            command="/incident",
            text="",
            channel_id=channel,
        )

    async def say_error(result: object, respond: AsyncRespond) -> None:
        if isinstance(result, Reply):
            await respond(text=result.text, response_type="ephemeral", replace_original=False)

    async def on_tick(body: dict[str, Any], respond: AsyncRespond) -> None:
        value = _button_value(body)
        if value is None or not isinstance(value.get("incident"), int):
            return
        request = await button_request(body)
        incident_id, step = int(value["incident"]), int(value.get("step", 0))

        async def work(ctx: Context) -> object:
            return tick_step(ctx, incident_id, step, request=request)

        await say_error(await perform(runtime, request, work), respond)

    async def on_resume(body: dict[str, Any], respond: AsyncRespond) -> None:
        value = _button_value(body)
        if value is None or not isinstance(value.get("rollout"), int):
            return
        request = await button_request(body)
        incident_id, rollout_id = int(value.get("incident", 0)), int(value["rollout"])

        async def work(ctx: Context) -> object:
            return await resume_paused_rollout(ctx, incident_id, rollout_id, request=request)

        result = await perform(runtime, request, work)
        if isinstance(result, Reply):
            await say_error(result, respond)
        else:
            await respond(
                text=f"Resumed the rollout paused by incident #{incident_id}.",
                response_type="ephemeral",
                replace_original=False,
            )

    app.action(re.compile(rf"^{re.escape(TICK_ACTION)}(\.\d+)?$"))(ack=ack_only, lazy=[on_tick])
    app.action(re.compile(rf"^{re.escape(RESUME_ACTION)}(\.\d+)?$"))(ack=ack_only, lazy=[on_resume])

    # -------------------------------------------------------- pinned messages

    async def pin(channel: str, ts: str, text: str | None, author: str | None, actor: str) -> None:
        request = Request(command="/incident", text="", user_id=actor, channel_id=channel)

        async def work(ctx: Context) -> object:
            return pin_message(ctx, channel=channel, ts=ts, text=text, author=author, actor=actor)

        await perform(runtime, request, work)

    async def on_pin_added(event: dict[str, Any]) -> None:
        item = event.get("item") or {}
        message = item.get("message") or {}
        channel = event.get("channel_id") or item.get("channel")
        ts = message.get("ts")
        if item.get("type") != "message" or not channel or not ts:
            return
        actor = str(event.get("user", ""))
        await pin(str(channel), str(ts), message.get("text"), message.get("user"), actor)

    async def on_reaction_added(event: dict[str, Any]) -> None:
        item = event.get("item") or {}
        if event.get("reaction") != PUSHPIN or item.get("type") != "message":
            return
        channel, ts = str(item.get("channel", "")), str(item.get("ts", ""))
        if not channel or not ts or not is_incident_channel(channel):
            return
        chat: IncidentChat = runtime.services["chat"]
        text = await chat.message_text(channel, ts)
        await pin(channel, ts, text, event.get("item_user"), str(event.get("user", "")))

    def is_incident_channel(channel: str) -> bool:
        with Session(runtime.engine) as session:
            return incident_in_channel(channel, session=session) is not None

    app.event("pin_added")(on_pin_added)
    app.event("reaction_added")(on_reaction_added)
