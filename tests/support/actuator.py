"""A fake deploy system on loopback: verifies the actuator signature, records every webhook it
receives (with its idempotency key) the moment it arrives, fails, stalls or holds on demand,
and replays what it applied. The webhook client under test reaches it over real HTTP.

A webhook is recorded, and counts as applied when its status is 200, on arrival, before any
stall: a wavegate killed while the deploy system holds a call has still told it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
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
    # time.monotonic() on arrival.
    at: float = 0.0

    @property
    def key(self) -> str:
        return str(self.body.get("idempotency_key", ""))


@dataclass(frozen=True)
class Exposure:
    """What the deploy system has done with one release, replayed from its webhooks."""

    state: str  # running, paused, complete, rolled_back
    wave: str | None


def replay(bodies: list[dict[str, Any]]) -> dict[str, Exposure]:
    """Apply the webhooks in order, each idempotency key once (a re-send changes nothing)."""
    seen: set[str] = set()
    exposure: dict[str, Exposure] = {}
    for body in bodies:
        key = str(body["idempotency_key"])
        if key in seen:
            continue
        seen.add(key)
        release, action, wave = body["release"], body["action"], body.get("wave")
        now = exposure.get(release)
        if action in ("start", "resume"):
            exposure[release] = Exposure("running", wave)
        elif action == "promote":
            exposure[release] = Exposure("complete" if wave is None else "running", wave)
        elif action == "pause":
            exposure[release] = Exposure("paused", wave)
        elif action == "rollback":
            exposure[release] = Exposure("rolled_back", now.wave if now else wave)
    return exposure


@dataclass
class FakeDeploySystem:
    secret: str = SECRET
    received: list[Received] = field(default_factory=list)
    # Status codes to answer with, one per request, before answering 200 again.
    failures: list[int] = field(default_factory=list)
    # Every call waits this long before answering.
    stall_seconds: float = 0.0
    # The first call with a new idempotency key waits this long; a re-send of a key already
    # seen is answered at once (a deploy system that already applied it).
    hold_new_seconds: float = 0.0
    url: str = ""
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition | None = None
    # Set at stop: every held call answers, so the server can close.
    _released: asyncio.Event | None = None

    def fail(self, times: int, status: int = 503) -> None:
        self.failures += [status] * times

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.status == 200]

    def actions(self) -> list[str]:
        return [body["action"] for body in self.accepted]

    def count(self, action: str | None = None) -> int:
        """Webhooks received (of one action), retries and re-sends included."""
        return sum(1 for r in self.received if action is None or r.body["action"] == action)

    def keys(self, action: str | None = None) -> list[str]:
        return [r.key for r in self.received if action is None or r.body["action"] == action]

    def replay(self) -> dict[str, Exposure]:
        """What the deploy system did, release by release, from the webhooks it accepted."""
        return replay(self.accepted)

    async def wait_for(self, count: int) -> None:
        """Until `count` webhooks have arrived (at most 20 s)."""
        assert self._arrived is not None
        async with asyncio.timeout(20), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)

    async def start(self) -> FakeDeploySystem:
        self._arrived = asyncio.Condition()
        self._released = asyncio.Event()
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
        if self._released is not None:
            self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.text()
        timestamp = request.headers.get("X-Wavegate-Timestamp", "")
        given = request.headers.get("X-Wavegate-Signature", "")
        mac = hmac.new(self.secret.encode(), f"v1:{timestamp}:{raw}".encode(), hashlib.sha256)
        ok = timestamp.isdigit() and hmac.compare_digest(given, "v1=" + mac.hexdigest())
        body = json.loads(raw)
        if not ok:
            status = 401
        elif self.failures:
            status = self.failures.pop(0)
        else:
            status = 200
        new_key = all(r.key != body.get("idempotency_key") for r in self.received)
        self.received.append(Received(body, timestamp, ok, status, time.monotonic()))
        if self._arrived is not None:
            async with self._arrived:
                self._arrived.notify_all()
        wait = self.stall_seconds + (self.hold_new_seconds if new_key else 0.0)
        if wait and self._released is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), wait)
        if status != 200:
            return web.json_response({"error": "deploy system says no"}, status=status)
        return web.json_response({"ok": True})
