"""The incident chat port in the console: it prints each call, uploads and archives included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commands.incident.views import form_as_text
from commands.ports import Channel, NameTaken


class ConsoleIncidentChat:
    """The console has no Slack: it prints each call, so the whole flow is visible."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.channels: dict[str, str] = {}

    async def create_channel(self, name: str) -> Channel:
        if name in self.channels.values():
            raise NameTaken(name)
        channel_id = f"C0INC{len(self.channels) + 1:04d}"
        self.channels[channel_id] = name
        self.say(f"[slack] conversations.create #{name} → {channel_id}")
        return Channel(channel_id, name)

    async def invite(self, channel: str, users: list[str]) -> None:
        self.say(f"[slack] conversations.invite {channel}: " + ", ".join(f"@{u}" for u in users))

    async def set_topic(self, channel: str, topic: str) -> None:
        self.say(f"[slack] conversations.setTopic {channel}: {topic}")

    async def open_modal(self, trigger_id: str | None, view: dict[str, Any]) -> bool:
        self.say(f"[slack] (in Slack a form would open: {form_as_text(view)})")
        return False

    async def message_text(self, channel: str, ts: str) -> str | None:
        return None

    async def upload_file(
        self, channel: str, *, filename: str, title: str, content: str, comment: str
    ) -> str | None:
        self.say(f"[slack] files.uploadV2 {channel}: {filename} ({title}) — {comment}\n{content}")
        return None

    async def archive_channel(self, channel: str) -> None:
        self.say(f"[slack] conversations.archive {channel}")
