"""A local HTTP receiver on loopback: records JSON POSTs (a paging webhook) and answers GETs
with a status the test sets (a backup route's health check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Receiver:
    received: list[dict[str, Any]] = field(default_factory=list)
    get_status: int = 200
    gets: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/enqueue", self._post)
        app.router.add_get("/health", self._get)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        # PagerDuty's Events API v2 answers 202 with a status and the dedup key.
        return web.json_response({"status": "success", "message": "Event processed"}, status=202)

    async def _get(self, request: web.Request) -> web.Response:
        self.gets += 1
        return web.Response(text="backup route", status=self.get_status)
