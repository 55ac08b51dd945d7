"""The incident chat port on Slack's Web API: channels, invites, topics, forms, files, archive."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from commands.incident.chat import ChatFailed
from commands.ports import Channel, NameTaken

log = logging.getLogger(__name__)


def _error(exc: SlackApiError) -> str:
    data = exc.response.data
    if isinstance(data, dict):
        return str(data.get("error", "unknown_error"))
    return f"HTTP {exc.response.status_code}"


class SlackIncidentChat:
    """Channels, invites, topics and forms through the Slack Web API."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def create_channel(self, name: str) -> Channel:
        try:
            response = await self.client.conversations_create(name=name, is_private=False)
        except SlackApiError as exc:
            if _error(exc) == "name_taken":
                raise NameTaken(name) from None
            raise ChatFailed(
                f"Slack refused to create the channel #{name}: {_error(exc)}"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChatFailed(f"Slack could not be reached to create #{name}: {exc}") from None
        channel: dict[str, Any] = response["channel"]
        return Channel(id=str(channel["id"]), name=str(channel.get("name", name)))

    async def invite(self, channel: str, users: list[str]) -> None:
        # `force` invites the valid users even when one of them cannot be invited.
        try:
            await self.client.conversations_invite(channel=channel, users=users, force=True)
        except SlackApiError as exc:
            # already_in_channel, cant_invite_self…: the channel works without them.
            log.warning("inviting %s to %s failed: %s", users, channel, _error(exc))

    async def set_topic(self, channel: str, topic: str) -> None:
        try:
            await self.client.conversations_setTopic(channel=channel, topic=topic)
        except SlackApiError as exc:
            log.warning("setting the topic of %s failed: %s", channel, _error(exc))

    async def open_modal(self, trigger_id: str | None, view: dict[str, Any]) -> bool:
        if trigger_id is None:
            return False
        try:
            await self.client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            log.warning("opening a form failed: %s", _error(exc))
            return False
        return True

    async def message_text(self, channel: str, ts: str) -> str | None:
        try:
            response = await self.client.conversations_history(
                channel=channel, latest=ts, oldest=ts, inclusive=True, limit=1
            )
        except SlackApiError as exc:
            log.warning("reading message %s in %s failed: %s", ts, channel, _error(exc))
            return None
        messages: list[dict[str, Any]] = response.get("messages") or []
        if not messages:
            return None
        return str(messages[0].get("text") or "") or None

    async def upload_file(
        self, channel: str, *, filename: str, title: str, content: str, comment: str
    ) -> str | None:
        # files_upload_v2: files.getUploadURLExternal, a POST of the bytes to the URL Slack
        # returns, then files.completeUploadExternal, which shares the file in the channel.
        try:
            response = await self.client.files_upload_v2(
                channel=channel,
                filename=filename,
                title=title,
                content=content,
                initial_comment=comment,
            )
        except SlackApiError as exc:
            raise ChatFailed(f"Slack refused the upload of {filename}: {_error(exc)}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChatFailed(f"Slack could not be reached to upload {filename}: {exc}") from None
        files: list[dict[str, Any]] = response.get("files") or []
        link = files[0].get("permalink") if files else None
        return str(link) if link else None

    async def archive_channel(self, channel: str) -> None:
        try:
            await self.client.conversations_archive(channel=channel)
        except SlackApiError as exc:
            if _error(exc) == "already_archived":
                return
            raise ChatFailed(f"Slack refused to archive <#{channel}>: {_error(exc)}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChatFailed(f"Slack could not be reached to archive <#{channel}>: {exc}") from None
