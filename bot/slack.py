"""The Bolt app: signature-checked Slack requests in, command replies out.

Listeners are the only code that calls `ack`/`respond`. A read-only, quick command answers inside
the acknowledgement; anything else acknowledges at once and answers through `respond()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import observe_ack
from bot.render import slack_payload
from bot.runtime import Runtime
from commands.access import group_ids
from commands.core import Request
from commands.router import ALIASES, ROOT, answers_in_ack

log = logging.getLogger(__name__)

SLASH_COMMANDS = [ROOT, *ALIASES]


class GroupMembership:
    """Which of the policy's user groups (S…) a user is in, cached for a few minutes."""

    def __init__(self, client: AsyncWebClient, ttl: float = 300.0) -> None:
        self.client = client
        self.ttl = ttl
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    async def groups_of(self, user_id: str, groups: set[str]) -> frozenset[str]:
        found = set()
        for group in sorted(groups):
            if user_id in await self._members_of(group):
                found.add(group)
        return frozenset(found)

    async def _members_of(self, group: str) -> frozenset[str]:
        cached = self._members.get(group)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            response = await self.client.usergroups_users_list(usergroup=group)
            users: list[Any] = response.get("users", []) or []
            members = frozenset(str(u) for u in users)
        except SlackApiError as exc:
            # Without the usergroups:read scope nobody is in a group: fail closed, loudly.
            log.warning(
                "cannot read members of user group %s: %s", group, exc.response.get("error")
            )
            members = frozenset()
        self._members[group] = (time.monotonic(), members)
        return members


Registrar = Callable[[AsyncApp, Runtime], None]


def registrars() -> list[Registrar]:
    """Every family's Bolt registrations beyond slash commands (buttons, modals, events)."""
    from bot import incident_actions, wave_actions

    return [register_commands, incident_actions.register, wave_actions.register]


def build_bolt_app(runtime: Runtime, client: AsyncWebClient) -> AsyncApp:
    settings = runtime.settings
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        # Always on: Bolt skips it only for requests that arrived over Socket Mode.
        request_verification_enabled=True,
        # Run the ack function inline rather than polling for ack() every 10 ms.
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
    runtime.services.setdefault("membership", GroupMembership(client))
    for register in registrars():
        register(app, runtime)
    return app


async def make_request(
    runtime: Runtime,
    *,
    user_id: str,
    command: str,
    text: str,
    channel_id: str | None,
    trigger_id: str | None = None,
) -> Request:
    """A command request for a Slack user, with their membership of the policy's user groups."""
    groups = group_ids(runtime.policy)
    membership: GroupMembership = runtime.services["membership"]
    member_of = await membership.groups_of(user_id, groups) if groups else frozenset()
    return Request(
        command=command,
        text=text,
        user_id=user_id,
        user_groups=member_of,
        channel_id=channel_id,
        trigger_id=trigger_id,
    )


def register_commands(app: AsyncApp, runtime: Runtime) -> None:
    async def to_request(command: dict[str, Any]) -> Request:
        return await make_request(
            runtime,
            user_id=str(command.get("user_id", "")),
            command=str(command.get("command", ROOT)),
            text=str(command.get("text", "")),
            channel_id=command.get("channel_id"),
            trigger_id=command.get("trigger_id"),
        )

    async def on_slash_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        started = time.perf_counter()
        request = await to_request(command)
        if answers_in_ack(request):
            reply = await runtime.run_command(request)
            await ack(**slack_payload(reply))
        else:
            await ack()
        observe_ack(time.perf_counter() - started)

    async def run_after_ack(command: dict[str, Any], respond: AsyncRespond) -> None:
        request = await to_request(command)
        if answers_in_ack(request):
            return
        reply = await runtime.run_command(request)
        await respond(**slack_payload(reply))

    for name in SLASH_COMMANDS:
        app.command(name)(ack=on_slash_command, lazy=[run_after_ack])
