"""The App Home tab: published when someone opens it, published again for recent viewers while
what it shows changes, and the presses of its buttons.

The Home is built in one short unit of work and published after it closes, so no transaction is
open while Slack is called. Who opened it recently is kept in memory by the replica that received
the `app_home_opened` event; another replica's viewers are refreshed by that replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.requests import Listeners
from commands.core import Request
from commands.home.content import home_content
from commands.home.view import home_view
from commands.wave.buttons import ACTIONS, press

log = logging.getLogger(__name__)

# How often the Homes of recent viewers are rebuilt and, where they changed, published again.
REFRESH_EVERY = 15.0
# A viewer who opened the Home longer ago than this is no longer refreshed.
RECENT = 30 * 60.0
# At most this many viewers are refreshed (the most recent ones).
MOST_VIEWERS = 100


class HomePublisher:
    """Publishes Homes and keeps those of recent viewers current."""

    def __init__(
        self,
        listeners: Listeners,
        client: AsyncWebClient,
        *,
        every: float = REFRESH_EVERY,
        recent: float = RECENT,
    ) -> None:
        self.listeners = listeners
        self.client = client
        self.every = every
        self.recent = recent
        # user id → when they last opened the Home (monotonic seconds).
        self.viewers: dict[str, float] = {}
        # user id → the view last published to them, so an unchanged Home is not sent again.
        self._published: dict[str, str] = {}
        self._refresher: asyncio.Task[None] | None = None

    def opened(self, user_id: str) -> None:
        """Remember a viewer, and refresh the recent viewers' Homes from now on."""
        self.viewers.pop(user_id, None)
        self.viewers[user_id] = time.monotonic()
        while len(self.viewers) > MOST_VIEWERS:
            oldest = next(iter(self.viewers))
            self.viewers.pop(oldest)
            self._published.pop(oldest, None)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_while_viewed())

    def view_for(self, request: Request) -> dict[str, Any]:
        """The viewer's Home, built in one short unit of work (closed before Slack is called)."""
        with self.listeners.runtime.unit() as ctx:
            return home_view(home_content(ctx, request))

    async def publish(self, user_id: str, *, force: bool = False) -> bool:
        """Build the viewer's Home and publish it when it differs from what they last got."""
        request = await self.listeners.request(
            user_id=user_id, command="home", text="", channel_id=None
        )
        view = self.view_for(request)
        digest = json.dumps(view, sort_keys=True)
        if not force and self._published.get(user_id) == digest:
            return False
        try:
            await self.client.views_publish(user_id=user_id, view=view)
        except SlackApiError as exc:
            log.warning("publishing the Home of %s failed: %s", user_id, exc.response.get("error"))
            return False
        self._published[user_id] = digest
        return True

    async def refresh(self) -> int:
        """Publish again every recent viewer's Home that changed; returns how many were sent."""
        cutoff = time.monotonic() - self.recent
        for user_id in [u for u, at in self.viewers.items() if at < cutoff]:
            self.viewers.pop(user_id)
            self._published.pop(user_id, None)
        sent = 0
        for user_id in list(self.viewers):
            sent += await self.publish(user_id)
        return sent

    async def _refresh_while_viewed(self) -> None:
        while self.viewers:
            await asyncio.sleep(self.every)
            try:
                await self.refresh()
            except Exception:
                # A failed round (database down) must not end the refreshing for good.
                log.exception("refreshing the App Homes failed")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher


def _pressed_on_home(body: dict[str, Any]) -> bool:
    return (body.get("view") or {}).get("type") == "home"


def register(app: AsyncApp, listeners: Listeners, publisher: HomePublisher) -> None:
    """The Home's listeners. Registered before the message buttons' listeners, so a press on the
    Home (which has no response URL) is answered here: by a direct message, then a fresh Home."""
    runtime = listeners.runtime

    async def on_home_opened(ack: AsyncAck, event: dict[str, Any]) -> None:
        await ack()
        if event.get("tab", "home") != "home":
            return
        user_id = str(event.get("user", ""))
        if not user_id:
            return
        listeners.after_ack(_publish(user_id))

    async def _publish(user_id: str) -> None:
        publisher.opened(user_id)  # on the work loop, where its refresher runs
        await publisher.publish(user_id, force=True)

    async def on_home_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user_id = str((body.get("user") or {}).get("id", ""))

        async def run() -> None:
            request = await listeners.request(
                user_id=user_id, command=str(action.get("action_id", "")), text="", channel_id=None
            )
            with runtime.unit() as ctx:
                reply = await press(
                    request, ctx, str(action.get("action_id", "")), str(action.get("value", ""))
                )
            try:
                await publisher.client.chat_postMessage(
                    channel=user_id, text=reply.text, blocks=reply.blocks
                )
            except SlackApiError as exc:
                log.warning(
                    "telling %s about a press failed: %s", user_id, exc.response.get("error")
                )
            await publisher.publish(user_id)

        listeners.after_ack(run())

    async def pressed_on_home(body: dict[str, Any]) -> bool:
        return _pressed_on_home(body)

    app.event("app_home_opened")(on_home_opened)
    for action_id in ACTIONS:
        app.action(action_id, matchers=[pressed_on_home])(on_home_button)
