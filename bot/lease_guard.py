"""A Slack client for the leader's posts whose every request checks the lease as its last step
before the bytes leave: a leader frozen (SIGSTOP, a VM pause) between deciding to send and
sending wakes up and sends nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.loop_sessions import close_each_on_its_loop


class LeaseLapsed(Exception):
    """The lease ran out between the outbox's check and the request leaving this process."""


class GuardedClient:
    """`client`'s token, URL and timeout on a session of its own (one per event loop: aiohttp
    binds a session to the loop that opened it) with a hook on the connection step.

    aiohttp's last hook before it writes a request is the connection being made or taken from
    the pool (`on_connection_create_end` / `on_connection_reuseconn`); after it the request
    goes out in the same step of the loop, with no await in between. Raising there aborts the
    request before a byte of it is written."""

    def __init__(self, client: AsyncWebClient, leading: Callable[[], bool]) -> None:
        self.template = client
        self.leading = leading
        self._open: dict[
            asyncio.AbstractEventLoop, tuple[AsyncWebClient, aiohttp.ClientSession]
        ] = {}

    async def _check(self, *_: Any) -> None:
        if not self.leading():
            raise LeaseLapsed("the lease ran out before the request left")

    def client(self) -> AsyncWebClient:
        loop = asyncio.get_running_loop()
        found = self._open.get(loop)
        if found is None:
            trace = aiohttp.TraceConfig(trace_config_ctx_factory=SimpleNamespace)
            trace.on_connection_create_end.append(self._check)
            trace.on_connection_reuseconn.append(self._check)
            session = aiohttp.ClientSession(trace_configs=[trace])
            template = self.template
            client = AsyncWebClient(
                token=template.token,
                base_url=template.base_url,
                timeout=template.timeout,
                headers=dict(template.headers or {}),
                session=session,
            )
            found = self._open[loop] = (client, session)
        return found[0]

    async def close(self) -> None:
        """Close every session it opened, each on its own loop."""
        opened, self._open = self._open, {}
        await close_each_on_its_loop({loop: session for loop, (_, session) in opened.items()})
