"""The incident chat port as the incident rules use it: present, or a clear error."""

from __future__ import annotations

from commands.core import CommandError, Context
from commands.ports import IncidentChat


class ChatFailed(CommandError):
    """The chat system refused or could not be reached; nothing was changed."""

    title = "Slack error"


def chat_of(ctx: Context) -> IncidentChat:
    """Channel and form calls need an answer at once (the new channel's id), so they are made
    through this port rather than the outbox."""
    if ctx.ports.chat is None:
        raise ChatFailed("no chat connection is configured for incident channels")
    return ctx.ports.chat
