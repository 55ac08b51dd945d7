"""A fake Prometheus and a fake JSON metric endpoint on loopback: real HTTP, recorded queries,
programmed answers per query, and every way a metric backend fails on demand.

    prom = await FakePrometheus().start()
    prom.program('sum(rate(x[5m]))', value(0.99), value("NaN"), prom_error())
    ...  # each poll takes the next answer; the last one repeats
    await prom.stop()

`closed_port_url()` gives a URL where nothing listens (connection refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# ---------------------------------------------------------------- answers


@dataclass(frozen=True)
class Answer:
    """One programmed answer: a status and body, optionally after a delay; or a hang past any
    timeout; or a connection dropped without an answer."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    hang: bool = False
    disconnect: bool = False


def _json(document: Any, status: int = 200) -> Answer:
    return Answer(status=status, body=json.dumps(document).encode())


def _success(data: dict[str, Any], warnings: list[str] | None = None) -> Answer:
    document: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        document["warnings"] = warnings
    return _json(document)


def _text(value: float | str) -> str:
    """Prometheus sends values as strings: 0.5 → "0.5", nan → "NaN", inf → "+Inf"."""
    if isinstance(value, str):
        return value
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def value(
    v: float | str, *, labels: dict[str, str] | None = None, warnings: list[str] | None = None
) -> Answer:
    """An instant vector of one series."""
    sample = {"metric": labels or {}, "value": [time.time(), _text(v)]}
    return _success({"resultType": "vector", "result": [sample]}, warnings)


def series(*values: float) -> Answer:
    """An instant vector of several series (one per value), as an unaggregated query returns."""
    result = [
        {"metric": {"pod": f"api-{index}"}, "value": [time.time(), _text(v)]}
        for index, v in enumerate(values)
    ]
    return _success({"resultType": "vector", "result": result})


def scalar(v: float | str) -> Answer:
    return _success({"resultType": "scalar", "result": [time.time(), _text(v)]})


def matrix(*values: float | str, series_count: int = 1) -> Answer:
    """A range vector: each series holds `values`, one sample a minute, oldest first."""
    now = time.time()
    samples = [[now - 60 * (len(values) - i), _text(v)] for i, v in enumerate(values)]
    result = [{"metric": {"pod": f"api-{i}"}, "values": samples} for i in range(series_count)]
    return _success({"resultType": "matrix", "result": result})


def empty() -> Answer:
    return _success({"resultType": "vector", "result": []})


def string_result(text: str = "hello") -> Answer:
    return _success({"resultType": "string", "result": [time.time(), text]})


def prom_error(
    error_type: str = "bad_data", message: str = "parse error at char 4", *, status: int = 400
) -> Answer:
    """Prometheus' own error answer, e.g. a PromQL syntax error (400) or a timeout (503)."""
    return _json({"status": "error", "errorType": error_type, "error": message}, status)


def http_error(status: int = 503, text: str = "Service Unavailable") -> Answer:
    return Answer(status=status, body=text.encode(), content_type="text/plain")


def html(status: int = 502) -> Answer:
    """The error page a proxy in front of Prometheus serves."""
    page = (
        "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
        "<body><h1>Bad Gateway</h1><p>nginx</p></body></html>"
    )
    return Answer(status=status, body=page.encode(), content_type="text/html")


def garbage(status: int = 200) -> Answer:
    return Answer(status=status, body=b"\x00\xffnot json{", content_type="application/json")


def hang(seconds: float = 30.0) -> Answer:
    """Answer nothing for `seconds` (released at once when the fake stops)."""
    return Answer(delay=seconds, hang=True)


def disconnect() -> Answer:
    return Answer(disconnect=True)


def document(doc: Any, status: int = 200) -> Answer:
    """Any JSON document (the fake JSON source's answers)."""
    return _json(doc, status)


# ---------------------------------------------------------------- the servers


@dataclass
class Call:
    key: str
    method: str
    path: str
    headers: dict[str, str]
    at: float


Programmed = list[Answer] | Callable[[int], Answer]


@dataclass
class _FakeHttp:
    calls: list[Call] = field(default_factory=list)
    default: Answer = field(default_factory=empty)
    url: str = ""
    _exact: dict[str, Programmed] = field(default_factory=dict)
    _patterns: list[tuple[re.Pattern[str], Programmed]] = field(default_factory=list)
    _served: dict[str, int] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def program(self, key: str, *answers: Answer) -> None:
        """The answers for one key, in order; the last one repeats."""
        if not answers:
            raise ValueError("program at least one answer")
        self._exact[key] = list(answers)

    def program_with(self, key: str, answer: Callable[[int], Answer]) -> None:
        """Answer the n-th call (0-based) of `key` with `answer(n)`."""
        self._exact[key] = answer

    def program_matching(self, pattern: str, *answers: Answer) -> None:
        """Answers for every key matching the regular expression (after exact keys)."""
        self._patterns.append((re.compile(pattern), list(answers)))

    def keys(self) -> list[str]:
        return [call.key for call in self.calls]

    def calls_for(self, key: str) -> list[Call]:
        return [call for call in self.calls if call.key == key]

    def _answer_for(self, key: str) -> Answer:
        programmed = self._exact.get(key)
        if programmed is None:
            programmed = next((a for p, a in self._patterns if p.search(key)), None)
        n = self._served.get(key, 0)
        self._served[key] = n + 1
        if programmed is None:
            return self.default
        if callable(programmed):
            return programmed(n)
        return programmed[min(n, len(programmed) - 1)]

    async def _respond(self, request: web.Request, key: str) -> web.StreamResponse:
        self.calls.append(
            Call(key, request.method, request.path_qs, dict(request.headers), time.time())
        )
        answer = self._answer_for(key)
        if answer.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=answer.delay)
            if answer.hang:
                return web.Response(status=504, text="hung")
        if answer.disconnect:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        return web.Response(
            status=answer.status, body=answer.body, content_type=answer.content_type
        )

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> Any:
        app = web.Application()
        self._routes(app)
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class FakePrometheus(_FakeHttp):
    """`POST /api/v1/query` (form) and `GET /api/v1/query?query=…`; keys are the queries.

    Unprogrammed queries get `default` (an empty result); `vector(1)` is healthy by default.
    """

    def __post_init__(self) -> None:
        self._exact.setdefault("vector(1)", [value(1)])

    @property
    def queries(self) -> list[str]:
        return self.keys()

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/query", self._query)
        app.router.add_get("/api/v1/query", self._query)

    async def _query(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            form = await request.post()
            query = str(form.get("query", ""))
        else:
            query = request.query.get("query", "")
        return await self._respond(request, query)


@dataclass
class FakeJsonSource(_FakeHttp):
    """Any `GET` path; keys are the path with its query string (`/api/cost?release=1.0`)."""

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/{tail:.*}", self._get)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        return await self._respond(request, request.path_qs)


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
