"""Prometheus as a metric source: instant and range queries over the HTTP API.

`POST /api/v1/query` (and `/api/v1/query_range`) with a form-encoded body (a long PromQL query
does not fit every proxy's URL limit). Prometheus sends sample values as strings — `"0.97"`,
`"NaN"`, `"+Inf"` — and an error as `{"status": "error", "errorType": …, "error": …}`, often
with a 4xx/5xx status: 400 `bad_data` for a query that does not parse and 422 `execution` for
one that fails on the data are the query's fault (misconfigured), not an outage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from bot.sources.http import (
    SourceHttp,
    auth_headers,
    connection_error,
    decode_json,
    missing_token,
    not_json_error,
)
from commands.analysis.compare import Samples
from commands.analysis.measure import Reading
from commands.policy import Metric
from commands.policy import PrometheusSource as PrometheusConfig

HEALTH_QUERY = "vector(1)"
MAX_SERIES_SHOWN = 3
# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000
# The error types that mean "this query cannot work", whatever the retry.
QUERY_FAULTS = {"bad_data", "execution"}


class PrometheusSource:
    """Reads one number per query from a Prometheus-compatible API (Prometheus, Thanos,
    Mimir, VictoriaMetrics)."""

    def __init__(
        self,
        config: PrometheusConfig,
        *,
        http: SourceHttp | None = None,
        **_: Any,
    ) -> None:
        self.config = config
        # Without a shared one (a lone client in a script), the client has its own.
        self.http = http or SourceHttp()
        self.endpoint = config.url.rstrip("/") + "/api/v1/query"
        self.where = f"Prometheus at {config.url.rstrip('/')}"

    async def read(self, query: str, *, metric: Metric | None = None) -> Reading:
        """One instant query; every kind of trouble comes back as a Reading with `error`."""
        answer = await self._post(self.endpoint, {"query": query}, detail=f"query: {query}")
        return answer.reading

    async def read_range(
        self, query: str, *, start: datetime, end: datetime, step: timedelta
    ) -> Samples:
        """Every sample of a one-series query between start and end, one per step."""
        seconds = max(1.0, step.total_seconds())
        span = (end - start).total_seconds()
        if span / seconds > MAX_POINTS:  # widen the step rather than be refused
            seconds = math.ceil(span / MAX_POINTS)
        form = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{seconds:g}",
        }
        reading = await self._post(
            self.endpoint + "_range", form, detail=f"query: {query}", samples=True
        )
        return Samples(
            values=reading.values,
            error=reading.reading.error,
            detail=reading.reading.detail,
            warnings=reading.reading.warnings,
            misconfigured=reading.reading.misconfigured is not None,
        )

    async def _post(
        self, endpoint: str, form: dict[str, str], *, detail: str, samples: bool = False
    ) -> _Answer:
        if problem := missing_token(self.config.bearer_token_env):
            return _Answer(Reading(error=f"{self.where}: {problem}", detail=detail))
        timeout = self.config.timeout
        try:
            async with (
                self.http.limit,
                self.http.session.post(
                    endpoint,
                    data=form,
                    headers=auth_headers(self.config.headers, self.config.bearer_token_env),
                    timeout=aiohttp.ClientTimeout(total=timeout.total_seconds()),
                ) as response,
            ):
                body = await response.read()
                status = response.status
                content_type = response.headers.get("Content-Type", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _Answer(Reading(error=connection_error(self.where, exc, timeout), detail=detail))
        if samples:
            return parse_range_answer(self.where, status, content_type, body, detail=detail)
        return _Answer(parse_answer(self.where, status, content_type, body, detail=detail))

    async def probe(self) -> Reading:
        """The health check before a wave starts: `vector(1)` must come back as 1."""
        return check_probe(await self.read(HEALTH_QUERY), self.where, HEALTH_QUERY)


class _Answer:
    """A parsed answer: the Reading, and a range query's samples."""

    def __init__(self, reading: Reading, values: tuple[float, ...] = ()) -> None:
        self.reading = reading
        self.values = values


def parse_range_answer(
    where: str, status: int, content_type: str, body: bytes, *, detail: str = ""
) -> _Answer:
    """A query_range answer → every sample of its one series (empty: no data)."""
    document, _ = decode_json(body)
    reading = parse_answer(where, status, content_type, body, detail=detail)
    if reading.error is not None or not isinstance(document, dict):
        return _Answer(reading)
    data = document.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list) or not result:
        return _Answer(reading)
    values = result[0].get("values") if isinstance(result[0], dict) else None
    found: list[float] = []
    for sample in sorted(values or [], key=_timestamp):
        number, _problem = _sample(sample)
        if number is not None:
            found.append(number)
    return _Answer(reading, tuple(found))


def check_probe(reading: Reading, where: str, query: str) -> Reading:
    if reading.error is None and reading.value != 1:
        return Reading(
            error=f"{where} answered {reading.value!r} to the health query {query} (expected 1)",
            detail=reading.detail,
        )
    return reading


def parse_answer(
    where: str, status: int, content_type: str, body: bytes, *, detail: str = ""
) -> Reading:
    """An HTTP answer of the query API → a Reading."""
    document, problem = decode_json(body)
    if problem is not None:
        return Reading(error=not_json_error(where, status, content_type, body), detail=detail)
    if not isinstance(document, dict):
        return Reading(
            error=f"{where} answered HTTP {status} with JSON that is not an object", detail=detail
        )
    warnings = _strings(document.get("warnings")) + _strings(document.get("infos"))
    if warnings:
        detail = f"{detail}; warnings: {'; '.join(warnings)}" if detail else "; ".join(warnings)
    if document.get("status") == "error" or not 200 <= status < 300:
        kind = document.get("errorType") or "error"
        message = document.get("error") or "no error message"
        # 400 bad_data / 422 execution: the query is wrong. (400 for a missing or too fine
        # `step` is ours, and no poll sends one.)
        faulty = kind in QUERY_FAULTS and status in (400, 422)
        return Reading(
            error=f"{where} answered HTTP {status}, {kind}: {message}",
            detail=detail,
            warnings=tuple(warnings),
            misconfigured="query" if faulty else None,
        )
    if document.get("status") != "success":
        return Reading(
            error=f"{where} answered with status {document.get('status')!r}, not success",
            detail=detail,
            warnings=tuple(warnings),
        )
    value, error = parse_data(document.get("data"))
    if error is not None:
        # Several series, a histogram, a string: what the query asks for is not one number.
        return Reading(
            error=f"{where} {error}",
            detail=detail,
            warnings=tuple(warnings),
            misconfigured="query" if error.startswith(_QUERY_SHAPE) else None,
        )
    return Reading(value=value, detail=detail, warnings=tuple(warnings))


# parse_data's complaints about what the query asks for (not about a garbled answer).
_QUERY_SHAPE = ("returned ", "answered an unsupported result type", "answered a native histogram")


def parse_data(data: object) -> tuple[float | None, str | None]:
    """`data` of a successful answer → (value, None), (None, None) when empty, or (None, why)."""
    if not isinstance(data, dict):
        return None, "answered without a data object"
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return _sample(result)
    if kind == "vector":
        if not isinstance(result, list):
            return None, "answered a vector without a result list"
        if not result:
            return None, None
        if len(result) > 1:
            return None, _too_many(result)
        series = result[0]
        if not isinstance(series, dict):
            return None, "answered a malformed vector sample"
        if "value" not in series and "histogram" in series:
            return None, "answered a native histogram; query a number (histogram_quantile, sum…)"
        return _sample(series.get("value"))
    if kind == "matrix":
        if not isinstance(result, list):
            return None, "answered a matrix without a result list"
        if not result:
            return None, None
        if len(result) > 1:
            return None, _too_many(result)
        series = result[0]
        values = series.get("values") if isinstance(series, dict) else None
        if not isinstance(values, list):
            return None, "answered a matrix series without values"
        if not values:
            return None, None
        # The latest sample of the single series (Prometheus sorts them; do not rely on it).
        latest = max(values, key=_timestamp)
        return _sample(latest)
    return None, (
        f"answered an unsupported result type {kind!r}; the query must return one number "
        "(a scalar, or a vector or matrix of one series)"
    )


def _timestamp(sample: object) -> float:
    if isinstance(sample, list | tuple) and sample and isinstance(sample[0], int | float):
        return float(sample[0])
    return -math.inf


def _sample(sample: object) -> tuple[float | None, str | None]:
    """`[1700000000.1, "0.97"]` → 0.97; `"NaN"`, `"+Inf"` and `"-Inf"` are floats too."""
    if not isinstance(sample, list | tuple) or len(sample) != 2:
        return None, f"answered a malformed sample {str(sample)[:80]!r}"
    raw = sample[1]
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None, f"answered a sample value that is not a number: {str(raw)[:80]!r}"
    try:
        return float(raw), None
    except ValueError:
        return None, f"answered a sample value that is not a number: {str(raw)[:80]!r}"


def _too_many(result: Sequence[object]) -> str:
    shown = ", ".join(_labels(series) for series in result[:MAX_SERIES_SHOWN])
    more = f" and {len(result) - MAX_SERIES_SHOWN} more" if len(result) > MAX_SERIES_SHOWN else ""
    return (
        f"returned {len(result)} series ({shown}{more}); the query must return exactly one — "
        "aggregate it, e.g. with sum(…) or max(…)"
    )


def _labels(series: object) -> str:
    labels = series.get("metric") if isinstance(series, dict) else None
    if not isinstance(labels, dict) or not labels:
        return "{}"
    inner = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return "{" + inner + "}"


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(item) for item in value]
