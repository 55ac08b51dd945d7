"""A JSON HTTP endpoint as a metric source: GET a URL, pick one number by a dotted path.

`path: data.cost_per_generation` reads `{"data": {"cost_per_generation": 0.11}}`; a number in a
path walks into a list (`items.0.value`, `items.-1.value` for the last). A metric's `query`, when
it has one, is sent as the URL's query string (`release={release}&window={window}`).
"""

from __future__ import annotations

import math
from typing import Any

import aiohttp

from bot.sources.http import (
    SourceHttp,
    auth_headers,
    connection_error,
    decode_json,
    looks_like_html,
    missing_token,
    not_json_error,
    snippet,
)
from commands.analysis.measure import Reading
from commands.policy import HttpJsonSource as HttpJsonConfig
from commands.policy import Metric


class HttpJsonSource:
    def __init__(
        self,
        config: HttpJsonConfig,
        *,
        http: SourceHttp | None = None,
        name: str = "",
        **_: Any,
    ) -> None:
        self.config = config
        self.name = name
        # Without a shared one (a lone client in a script), the client has its own.
        self.http = http or SourceHttp()
        self.where = f"JSON source at {config.url}"

    def url_for(self, query: str) -> str:
        query = query.strip().lstrip("?")
        if not query:
            return self.config.url
        joiner = "&" if "?" in self.config.url else "?"
        return f"{self.config.url}{joiner}{query}"

    async def read(self, query: str = "", *, metric: Metric | None = None) -> Reading:
        url = self.url_for(query)
        detail = f"GET {url} → {self.config.path}"
        if problem := missing_token(self.config.bearer_token_env):
            return Reading(error=f"{self.where}: {problem}", detail=detail)
        timeout = self.config.timeout
        try:
            async with (
                self.http.limit,
                self.http.session.get(
                    url,
                    headers={
                        "Accept": "application/json",
                        **auth_headers(self.config.headers, self.config.bearer_token_env),
                    },
                    timeout=aiohttp.ClientTimeout(total=timeout.total_seconds()),
                ) as response,
            ):
                body = await response.read()
                status = response.status
                content_type = response.headers.get("Content-Type", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Reading(error=connection_error(self.where, exc, timeout), detail=detail)
        if looks_like_html(content_type, body):
            return Reading(
                error=not_json_error(self.where, status, content_type, body), detail=detail
            )
        if not 200 <= status < 300:
            return Reading(
                error=f"{self.where} answered HTTP {status}: {snippet(body)!r}", detail=detail
            )
        document, problem = decode_json(body)
        if problem is not None:
            return Reading(
                error=not_json_error(self.where, status, content_type, body), detail=detail
            )
        value, error = pick_number(document, self.config.path)
        if error is not None:
            # The answer came; the source's `path` does not fit it: a policy fix, not an outage.
            return Reading(
                error=f"{self.where}: {error}",
                detail=detail,
                misconfigured=f"sources.{self.name or '?'}.path",
            )
        return Reading(value=value, detail=detail)

    async def probe(self) -> Reading:
        """The health check before a wave starts: the URL answers and the path holds a number."""
        reading = await self.read("")
        if reading.error is None and (reading.value is None or math.isnan(reading.value)):
            return Reading(
                error=f"{self.where}: {self.config.path} holds no number", detail=reading.detail
            )
        return reading


def pick_number(document: object, path: str) -> tuple[float | None, str | None]:
    """The number at a dotted path → (value, None); null → (None, None): no data; anything else
    → (None, what is wrong, naming the part of the path that did not fit)."""
    current = document
    walked: list[str] = []
    for part in path.split("."):
        here = ".".join(walked) or "the document"
        if isinstance(current, dict):
            if part not in current:
                keys = ", ".join(sorted(str(k) for k in current)[:10]) or "none"
                return None, f"no key {part!r} in {here} (keys: {keys})"
            current = current[part]
        elif isinstance(current, list):
            try:
                index = int(part)
            except ValueError:
                return None, f"{here} is a list; {part!r} is not an index"
            if not -len(current) <= index < len(current):
                return None, f"{here} has {len(current)} items; there is no item {index}"
            current = current[index]
        else:
            return None, f"{here} is {_kind(current)}, so it has no {part!r}"
        walked.append(part)
    if current is None:
        return None, None
    if isinstance(current, bool):
        return None, f"{path} is a boolean, not a number"
    if isinstance(current, int | float):
        return float(current), None
    if isinstance(current, str):
        # Money is often sent as a string ("0.11") to avoid float rounding.
        try:
            return float(current), None
        except ValueError:
            return None, f"{path} is the text {current[:60]!r}, not a number"
    return None, f"{path} is {_kind(current)}, not a number"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return type(value).__name__
