"""A fake deploy system on loopback: verifies the actuator signature, records calls, and fails
(or stalls) on demand. The webhook client under test reaches it over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SECRET = "test-actuator-secret"


@dataclass
class Received:
    body: dict[str, Any]
    timestamp: str
    signature_ok: bool
    status: int


@dataclass
class FakeDeploySystem:
    secret: str = SECRET
    received: list[Received] = field(default_factory=list)
    # Status codes to answer with, one per request, before answering 200 again.
    failures: list[int] = field(default_factory=list)
    stall_seconds: float = 0.0
    url: str = ""
    _runner: web.AppRunner | None = None

    def fail(self, times: int, status: int = 503) -> None:
        self.failures += [status] * times

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.status == 200]

    def actions(self) -> list[str]:
        return [body["action"] for body in self.accepted]

    async def start(self) -> FakeDeploySystem:
        app = web.Application()
        app.router.add_post("/hooks/wavegate", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hooks/wavegate"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.text()
        timestamp = request.headers.get("X-Wavegate-Timestamp", "")
        given = request.headers.get("X-Wavegate-Signature", "")
        mac = hmac.new(self.secret.encode(), f"v1:{timestamp}:{raw}".encode(), hashlib.sha256)
        ok = timestamp.isdigit() and hmac.compare_digest(given, "v1=" + mac.hexdigest())
        body = json.loads(raw)
        if self.stall_seconds:
            await asyncio.sleep(self.stall_seconds)
        if not ok:
            status = 401
        elif self.failures:
            status = self.failures.pop(0)
        else:
            status = 200
        self.received.append(Received(body, timestamp, ok, status))
        if status != 200:
            return web.json_response({"error": "deploy system says no"}, status=status)
        return web.json_response({"ok": True})
