"""From a Slack payload to a command `Request`: the user and the user groups they are in."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Runtime
from commands.access import group_ids
from commands.core import Request

log = logging.getLogger(__name__)


class GroupMembership:
    """Which of the policy's user groups (S…) a user is in, cached for a few minutes. A failed
    lookup is not an empty group: it is remembered only for `retry_after` seconds (so an outage
    is not hammered), logged once per outage, and reported as unread."""

    def __init__(
        self, client: AsyncWebClient, ttl: float = 300.0, retry_after: float = 10.0
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.retry_after = retry_after
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._failed: dict[str, float] = {}

    async def groups_of(
        self, user_id: str, groups: set[str]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """The groups the user is in, and the groups whose members could not be read."""
        found, unread = set(), set()
        for group in sorted(groups):
            members = await self._members_of(group)
            if members is None:
                unread.add(group)
            elif user_id in members:
                found.add(group)
        return frozenset(found), frozenset(unread)

    async def _members_of(self, group: str) -> frozenset[str] | None:
        now = time.monotonic()
        cached = self._members.get(group)
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        failed_at = self._failed.get(group)
        if failed_at is not None and now - failed_at < self.retry_after:
            return None
        try:
            response = await self.client.usergroups_users_list(usergroup=group)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            if group not in self._failed:
                # Without the usergroups:read scope, or with Slack down, nobody's membership
                # is known: permissions resting on the group fail closed until a read works.
                why = exc.response.get("error") if isinstance(exc, SlackApiError) else repr(exc)
                log.warning("cannot read members of user group %s: %s", group, why)
            self._failed[group] = now
            return None
        users: list[Any] = response.get("users", []) or []
        members = frozenset(str(u) for u in users)
        if self._failed.pop(group, None) is not None:
            log.info("members of user group %s are readable again", group)
        self._members[group] = (now, members)
        return members


NO_USER = "This press does not say who pressed it; nothing changed."


def action_of(body: dict[str, Any]) -> dict[str, Any]:
    """The pressed element of a `block_actions` payload ({} when the payload has none)."""
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    return first if isinstance(first, dict) else {}


def id_of(body: dict[str, Any], key: str) -> str | None:
    """`body[key]["id"]` (the user, the channel) when it is there and a string."""
    part = body.get(key)
    value = part.get("id") if isinstance(part, dict) else None
    return value if isinstance(value, str) and value else None


@dataclass
class Listeners:
    """What every Bolt listener shares: the runtime, the group lookup, and the work it started
    after acknowledging (kept so a shutdown can wait for it)."""

    runtime: Runtime
    membership: GroupMembership
    # The work after an ack, running on the work loop (bot/work.py); futures on the Bolt loop.
    in_flight: set[asyncio.Future[None]] = field(default_factory=set)
    # Whether Bolt has authorized a request (its one auth.test of the token): until then every
    # Slack request goes through Bolt, so the first one with Slack unreachable is answered as
    # Bolt answers it (bot/slack/commands.py sets it, bot/http/slack_events.py reads it).
    token_checked: bool = False

    async def request(
        self,
        *,
        user_id: str,
        command: str,
        text: str,
        channel_id: str | None,
        trigger_id: str | None = None,
    ) -> Request:
        """A command request for a Slack user, with their membership of the policy's groups."""
        groups = group_ids(self.runtime.policy)
        member_of, unread = (
            await self.membership.groups_of(user_id, groups)
            if groups
            else (frozenset(), frozenset())
        )
        return Request(
            command=command,
            text=text,
            user_id=user_id,
            user_groups=member_of,
            unread_groups=unread,
            channel_id=channel_id,
            trigger_id=trigger_id,
        )

    def after_ack(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` on the work loop once the acknowledgement is on its way (Slack waits 3 s
        for it): its database and rendering work never delays the next ack."""
        future = self.runtime.work.spawn(work)
        self.in_flight.add(future)
        future.add_done_callback(self._finished)

    def _finished(self, future: asyncio.Future[None]) -> None:
        self.in_flight.discard(future)
        if not future.cancelled() and (error := future.exception()) is not None:
            log.error("work after an acknowledgement failed", exc_info=error)

    async def drain(self, seconds: float) -> int:
        """Wait up to `seconds` for the work in flight; returns how many were left."""
        if not self.in_flight:
            return 0
        _, pending = await asyncio.wait(set(self.in_flight), timeout=seconds)
        return len(pending)
