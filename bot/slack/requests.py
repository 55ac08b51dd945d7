"""From a Slack payload to a command `Request`: the user and the user groups they are in."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Runtime
from commands.access import group_ids
from commands.core import Request

log = logging.getLogger(__name__)


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


@dataclass
class Listeners:
    """What every Bolt listener shares: the runtime, the group lookup, and the work it started
    after acknowledging (kept so a shutdown can wait for it)."""

    runtime: Runtime
    membership: GroupMembership
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)

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
        member_of = await self.membership.groups_of(user_id, groups) if groups else frozenset()
        return Request(
            command=command,
            text=text,
            user_id=user_id,
            user_groups=member_of,
            channel_id=channel_id,
            trigger_id=trigger_id,
        )

    def after_ack(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` once the acknowledgement is on its way (Slack waits 3 s for it)."""
        task = asyncio.create_task(work)
        self.in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("work after an acknowledgement failed", exc_info=error)

    async def drain(self, seconds: float) -> int:
        """Wait up to `seconds` for the work in flight; returns how many were left."""
        if not self.in_flight:
            return 0
        _, pending = await asyncio.wait(set(self.in_flight), timeout=seconds)
        return len(pending)
