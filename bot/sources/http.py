"""What HTTP metric sources share: one aiohttp ClientSession, one concurrency limit, and the
plumbing that opens them with the service and closes them after.

`build_sources(policy, **shared)` hands every client the same `SourceHttp` (one session, one
limit), so 500 rollouts x 4 metrics reuse a pool of keep-alive connections and never have more
than `concurrency` requests in flight against the metric backends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp

from bot.loop_sessions import close_each_on_its_loop

log = logging.getLogger(__name__)

# Requests in flight against all metric backends together. A Prometheus answers an instant
# query in milliseconds; more parallelism than this only queues inside Prometheus.
DEFAULT_CONCURRENCY = 32


class SourceHttp:
    """The one ClientSession and the concurrency limit shared by every metric source.

    The session is opened on first use, inside the running event loop (aiohttp binds a session
    to its loop, asyncio a semaphore), so sources can be built anywhere, before the loop runs.
    Under `wavegate serve` every poll runs on the work loop (bot/work.py), so there is one; a
    test that polls by hand on its own loop gets that loop's own session and limit.
    """

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.concurrency = concurrency
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._limits: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    @property
    def limit(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop not in self._limits:
            self._limits[loop] = asyncio.Semaphore(self.concurrency)
        return self._limits[loop]

    @property
    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, ttl_dns_cache=300),
                headers={"User-Agent": "wavegate (metric poller)"},
                # Every request sets its own timeout from its source's `timeout`.
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return session

    def shared(self) -> dict[str, Any]:
        """What `build_sources(policy, **shared)` hands every client."""
        return {"http": self}

    async def close(self) -> None:
        """Close every session, each on its own loop (a loop that has closed took its own
        session with it)."""
        sessions, self._sessions = self._sessions, {}
        self._limits = {}
        await close_each_on_its_loop(sessions)


# ---------------------------------------------------------------- helpers for the clients


def auth_headers(headers: Mapping[str, str], bearer_token_env: str | None) -> dict[str, str]:
    """The configured headers, plus `Authorization: Bearer …` from the named environment
    variable (read at each request, so a rotated token is picked up without a restart)."""
    out = dict(headers)
    if bearer_token_env:
        token = os.environ.get(bearer_token_env, "").strip()
        if token:
            out["Authorization"] = f"Bearer {token}"
    return out


def missing_token(bearer_token_env: str | None) -> str | None:
    """A plain-words error when the source names a token variable that is not set."""
    if bearer_token_env and not os.environ.get(bearer_token_env, "").strip():
        return f"the bearer token variable {bearer_token_env} is not set"
    return None


def seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"


def snippet(body: bytes, limit: int = 120) -> str:
    """The start of a body as one line, for messages about junk answers."""
    text = body.decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def looks_like_html(content_type: str, body: bytes) -> bool:
    head = body.lstrip()[:15].lower()
    return "html" in content_type or head.startswith((b"<!doctype", b"<html"))


def decode_json(body: bytes) -> tuple[Any, str | None]:
    """(document, None) or (None, why it is not JSON)."""
    try:
        return json.loads(body), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"not JSON ({exc.__class__.__name__}: {exc})"


def not_json_error(where: str, status: int, content_type: str, body: bytes) -> str:
    kind = "an HTML page" if looks_like_html(content_type, body) else "a body that is not JSON"
    hint = " (a proxy or load balancer error page?)" if kind == "an HTML page" else ""
    return f"{where} answered HTTP {status} with {kind}{hint}: {snippet(body)!r}"


def connection_error(where: str, exc: BaseException, timeout: timedelta) -> str:
    """Plain words for the ways a request dies before an answer arrives."""
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer within {seconds(timeout)} (timeout)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        err = exc.os_error
        reason = os.strerror(err.errno) if err.errno else (err.strerror or str(err))
        return f"{where} is unreachable: {reason.lower()}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{where} closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"{where} sent a broken body: {exc}"
    return f"{where}: {exc.__class__.__name__}: {exc}"
