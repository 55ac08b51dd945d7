"""What the incident commands need from the chat system beyond posting: channels and forms.

Posts still go through the outbox (`commands.announce`); these calls need an answer at once
(the new channel's id), so they are made synchronously through this port, found in
`ctx.services["chat"]`. The bot implements it with the Slack Web API, the console by printing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from commands.core import CommandError, Context


class NameTaken(Exception):
    """A channel of that name exists already; the caller tries another name."""


class ChatFailed(CommandError):
    """The chat system refused or could not be reached; nothing was changed."""

    title = "Slack error"


@dataclass(frozen=True)
class Channel:
    id: str
    name: str


class IncidentChat(Protocol):
    async def create_channel(self, name: str) -> Channel:
        """Create a public channel; raises NameTaken when the name is in use."""

    async def invite(self, channel: str, users: list[str]) -> None:
        """Invite users (U…/W… ids). People already there, or not invitable, are skipped."""

    async def set_topic(self, channel: str, topic: str) -> None: ...

    async def open_modal(self, trigger_id: str | None, view: dict[str, Any]) -> bool:
        """Open a form with the trigger of the request that asks for it; False when none can be
        opened (no Slack trigger, as in the console)."""

    async def message_text(self, channel: str, ts: str) -> str | None:
        """The text of one message (for a message pinned by reaction), None when unreadable."""


def chat_of(ctx: Context) -> IncidentChat:
    chat = ctx.services.get("chat")
    if chat is None:
        raise ChatFailed("no chat connection is configured for incident channels")
    return chat  # type: ignore[no-any-return]
