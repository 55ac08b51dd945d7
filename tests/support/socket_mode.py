"""A fake Slack Socket Mode server on loopback: hello on connect, envelopes out, acks recorded.

It speaks the protocol as slack_sdk's Socket Mode clients expect it
(https://docs.slack.dev/apis/events-api/using-socket-mode/): the client asks the Web API
`apps.connections.open` for a `ws://` URL (FakeSlack answers with this server's once `attach`ed),
connects, gets `{"type": "hello"}`, then receives envelopes `{"envelope_id", "type", "payload",
"accepts_response_payload"}` and acknowledges each with `{"envelope_id", "payload"?}`. The server
can close the socket or send `{"type": "disconnect"}` to make the client reconnect.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from tests.support.slack import FakeSlack

APP_TOKEN = "xapp-1-A0WAVE-1-test"
APP_ID = "A0WAVE"
TEAM_ID = "T0TEST"


@dataclass(frozen=True)
class Ack:
    """What the client sent back for one envelope, and over which connection (1, 2, …)."""

    envelope_id: str
    payload: dict[str, Any] | None
    connection: int


@dataclass
class _Link:
    number: int
    socket: web.WebSocketResponse


class SocketModeServer:
    def __init__(self) -> None:
        self.url = ""
        self.connections = 0
        self.acks: dict[str, Ack] = {}
        self.sent: list[dict[str, Any]] = []
        self._open: list[_Link] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._event_ids = itertools.count(1)

    # ------------------------------------------------------------ server

    async def start(self) -> SocketModeServer:
        app = web.Application()
        app.router.add_get("/link", self._link)
        # A short grace: the sockets are closed by `stop` before the runner waits for handlers.
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/link"
        return self

    def attach(self, slack: FakeSlack) -> None:
        """Make `apps.connections.open` at this fake Slack answer with this server's URL."""
        slack.socket_url = self.url

    async def stop(self) -> None:
        for link in list(self._open):
            await link.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        # autoping (the default) answers the client's keep-alive pings as Slack does.
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.connections += 1
        link = _Link(self.connections, socket)
        self._open.append(link)
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": len(self._open),
                "debug_info": {"host": "wavegate-fake-socket", "approximate_connection_time": 60},
                "connection_info": {"app_id": APP_ID},
            }
        )
        await self._notify()
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    await self._received(link, message.data)
        finally:
            self._open.remove(link)
            await self._notify()
        return socket

    async def _received(self, link: _Link, text: str) -> None:
        data = json.loads(text)
        envelope_id = data.get("envelope_id") if isinstance(data, dict) else None
        if isinstance(envelope_id, str):
            payload = data.get("payload")
            self.acks[envelope_id] = Ack(envelope_id, payload or None, link.number)
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _until(self, done: Callable[[], bool], within: float, what: str) -> None:
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(done)
        except TimeoutError:
            raise AssertionError(f"socket mode server: no {what} within {within} s") from None

    # ------------------------------------------------------------ test API

    @property
    def open_connections(self) -> int:
        return sum(1 for link in self._open if not link.socket.closed)

    async def wait_connections(self, count: int, *, within: float = 10.0) -> None:
        """Until `count` connections have been made in all (and one is open)."""
        await self._until(
            lambda: self.connections >= count and self.open_connections > 0,
            within,
            f"connection #{count}",
        )

    async def ack(self, envelope_id: str, *, within: float = 10.0) -> Ack:
        """The acknowledgement of one envelope, once the client has sent it."""
        await self._until(lambda: envelope_id in self.acks, within, f"ack for {envelope_id}")
        return self.acks[envelope_id]

    async def send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool,
        extra: dict[str, Any] | None = None,
        within: float = 10.0,
    ) -> str:
        """Send one envelope over the newest open connection; its envelope id."""
        await self._until(lambda: self.open_connections > 0, within, "open connection")
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            **(extra or {}),
        }
        self.sent.append(envelope)
        newest = [link for link in self._open if not link.socket.closed][-1]
        await newest.socket.send_json(envelope)
        return envelope_id

    async def slash_command(
        self,
        command: str,
        text: str = "",
        *,
        user_id: str = "U0RM1",
        channel_id: str = "C0WORK",
        response_url: str = "",
    ) -> str:
        payload = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "wavegate-test",
            "channel_id": channel_id,
            "channel_name": "work",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": "1337.42.socket",
        }
        return await self.send("slash_commands", payload, accepts_response_payload=True)

    async def interactive(self, payload: dict[str, Any]) -> str:
        """Buttons, modals, shortcuts: Slack takes a response payload only from a view
        submission (`response_action`), not from a block action."""
        accepts = payload.get("type") in {"view_submission", "view_closed"}
        return await self.send("interactive", payload, accepts_response_payload=accepts)

    async def event(self, event: dict[str, Any]) -> str:
        """An Events API event (`{"type": "pin_added", …}`) in its `event_callback` wrapper."""
        number = next(self._event_ids)
        payload = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev0SOCKET{number:04d}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": TEAM_ID, "user_id": "U0BOT", "is_bot": True, "enterprise_id": None}
            ],
        }
        return await self.send(
            "events_api",
            payload,
            accepts_response_payload=False,
            extra={"retry_attempt": 0, "retry_reason": ""},
        )

    async def drop(self) -> None:
        """Close every open socket, as a Slack server going away does."""
        for link in list(self._open):
            await link.socket.close(code=WSCloseCode.GOING_AWAY, message=b"server going away")

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to move to a new connection (Slack does so every few hours)."""
        for link in list(self._open):
            if not link.socket.closed:
                await link.socket.send_json(
                    {
                        "type": "disconnect",
                        "reason": reason,
                        "debug_info": {"host": "wavegate-fake-socket"},
                    }
                )
