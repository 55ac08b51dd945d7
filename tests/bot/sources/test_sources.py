"""Metric sources over real HTTP against fakes on loopback: every failure mode of a metric
backend becomes a Reading with a clear error, and `classify` turns it into the right phase."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from bot.runtime import Runtime
from bot.settings import Settings
from bot.sources.http import SourceHttp
from bot.sources.http_json import HttpJsonSource, pick_number
from bot.sources.prometheus import PrometheusSource
from bot.sources.registry import build_sources
from bot.wiring import wire
from commands.analysis.measure import Phase, Reading, classify
from commands.policy import HttpJsonSource as HttpJsonConfig
from commands.policy import Metric, Policy
from commands.policy import PrometheusSource as PromConfig
from tests.support.prometheus import (
    FakeJsonSource,
    FakePrometheus,
    closed_port_url,
    disconnect,
    document,
    empty,
    garbage,
    hang,
    html,
    http_error,
    matrix,
    prom_error,
    scalar,
    series,
    string_result,
    value,
)

QUERY = 'sum(rate(generations_succeeded_total{release="1.0"}[5m]))'
SUCCESS = Metric.model_validate(
    {"id": "completion_success_rate", "source": "prom", "query": QUERY, "success": ">= 0.97"}
)


def prometheus(url: str, http: SourceHttp, **config: object) -> PrometheusSource:
    cfg = PromConfig.model_validate({"type": "prometheus", "url": url, **config})
    return PrometheusSource(cfg, **http.shared())


def json_source(url: str, http: SourceHttp, path: str, **config: object) -> HttpJsonSource:
    cfg = HttpJsonConfig.model_validate({"type": "http_json", "url": url, "path": path, **config})
    return HttpJsonSource(cfg, **http.shared())


# ---------------------------------------------------------------- Prometheus: values


async def test_vector_value_is_read_from_a_form_encoded_post(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    prom.program(QUERY, value(0.982))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading == Reading(value=0.982, detail=f"query: {QUERY}")
    [call] = prom.calls_for(QUERY)
    assert call.method == "POST"
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert classify(SUCCESS, reading).phase is Phase.successful


@pytest.mark.parametrize(
    ("raw", "expected"), [("NaN", math.nan), ("+Inf", math.inf), ("-Inf", -math.inf)]
)
async def test_special_string_values_are_floats(
    prom: FakePrometheus, http: SourceHttp, raw: str, expected: float
) -> None:
    prom.program(QUERY, value(raw))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is None
    assert reading.value is not None
    if math.isnan(expected):
        assert math.isnan(reading.value)
    else:
        assert reading.value == expected


async def test_nan_is_inconclusive_not_an_error(prom: FakePrometheus, http: SourceHttp) -> None:
    prom.program(QUERY, value("NaN"))
    poll = classify(SUCCESS, await prometheus(prom.url, http).read(QUERY, metric=SUCCESS))
    assert poll.phase is Phase.inconclusive
    assert "NaN" in poll.detail


async def test_scalar_result(prom: FakePrometheus, http: SourceHttp) -> None:
    prom.program(QUERY, scalar("42"))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.value == 42.0


async def test_matrix_takes_the_latest_sample_of_its_single_series(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    prom.program(QUERY, matrix(0.5, 0.7, 0.99))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.value == 0.99


async def test_empty_result_is_no_value_and_inconclusive(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    prom.program(QUERY, empty())
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is None
    assert reading.value is None
    assert classify(SUCCESS, reading).phase is Phase.inconclusive


async def test_warnings_are_kept(prom: FakePrometheus, http: SourceHttp) -> None:
    prom.program(QUERY, value(0.99, warnings=["PromQL info: metric might not be a counter"]))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.value == 0.99
    assert reading.warnings == ("PromQL info: metric might not be a counter",)
    assert "might not be a counter" in reading.detail


async def test_headers_and_bearer_token_from_the_environment(
    prom: FakePrometheus, http: SourceHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROM_TOKEN", "s3cret")
    source = prometheus(
        prom.url, http, bearer_token_env="PROM_TOKEN", headers={"X-Scope-OrgID": "team-a"}
    )
    prom.program(QUERY, value(1))
    await source.read(QUERY, metric=SUCCESS)
    [call] = prom.calls_for(QUERY)
    assert call.headers["Authorization"] == "Bearer s3cret"
    assert call.headers["X-Scope-OrgID"] == "team-a"


async def test_unset_token_variable_is_an_error_without_a_request(
    prom: FakePrometheus, http: SourceHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROM_TOKEN", raising=False)
    reading = await prometheus(prom.url, http, bearer_token_env="PROM_TOKEN").read(
        QUERY, metric=SUCCESS
    )
    assert reading.error is not None
    assert "PROM_TOKEN is not set" in reading.error
    assert prom.calls == []


# ---------------------------------------------------------------- Prometheus: failures


async def test_connection_refused_is_an_error(http: SourceHttp) -> None:
    reading = await prometheus(closed_port_url(), http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert "unreachable" in reading.error
    assert "refused" in reading.error
    poll = classify(SUCCESS, reading)
    assert poll.phase is Phase.error
    assert QUERY in poll.detail


async def test_timeout_is_an_error_within_the_configured_time(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    prom.program(QUERY, hang(30))
    started = time.monotonic()
    reading = await prometheus(prom.url, http, timeout="300ms").read(QUERY, metric=SUCCESS)
    assert time.monotonic() - started < 5
    assert reading.error is not None
    assert "did not answer within 0.3s" in reading.error
    assert classify(SUCCESS, reading).phase is Phase.error


@pytest.mark.parametrize("status", [400, 404, 500, 502, 503])
async def test_non_2xx_plain_text_is_an_error_naming_the_status(
    prom: FakePrometheus, http: SourceHttp, status: int
) -> None:
    prom.program(QUERY, http_error(status, "upstream trouble"))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert f"HTTP {status}" in reading.error
    assert "upstream trouble" in reading.error


async def test_html_error_page_from_a_proxy_is_an_error(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    prom.program(QUERY, html(502))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert "HTTP 502 with an HTML page" in reading.error
    assert "Bad Gateway" in reading.error


async def test_html_with_status_200_is_still_an_error(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    prom.program(QUERY, html(200))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert "HTML page" in reading.error


async def test_non_json_bytes_are_an_error(prom: FakePrometheus, http: SourceHttp) -> None:
    prom.program(QUERY, garbage())
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert "not JSON" in reading.error


async def test_status_error_keeps_error_type_and_message(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    prom.program(QUERY, prom_error("bad_data", '1:5: parse error: unexpected "}"'))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert "HTTP 400, bad_data" in reading.error
    assert 'parse error: unexpected "}"' in reading.error


async def test_status_error_with_200_is_an_error(prom: FakePrometheus, http: SourceHttp) -> None:
    prom.program(QUERY, prom_error("execution", "query timed out", status=200))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert "execution: query timed out" in reading.error


async def test_more_than_one_series_is_an_error_naming_them(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    prom.program(QUERY, series(0.9, 0.95, 0.99, 1.0))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert "returned 4 series" in reading.error
    assert 'pod="api-0"' in reading.error
    assert "and 1 more" in reading.error
    assert "sum(" in reading.error


async def test_matrix_of_several_series_is_an_error(prom: FakePrometheus, http: SourceHttp) -> None:
    prom.program(QUERY, matrix(0.5, 0.6, series_count=2))
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert "returned 2 series" in reading.error


async def test_unsupported_result_type_is_an_error(prom: FakePrometheus, http: SourceHttp) -> None:
    prom.program(QUERY, string_result())
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert "unsupported result type 'string'" in reading.error


async def test_dropped_connection_is_an_error(prom: FakePrometheus, http: SourceHttp) -> None:
    prom.program(QUERY, disconnect())
    reading = await prometheus(prom.url, http).read(QUERY, metric=SUCCESS)
    assert reading.error is not None
    assert classify(SUCCESS, reading).phase is Phase.error


async def test_answers_follow_the_program_and_the_last_repeats(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    prom.program(QUERY, value(0.99), http_error(503), value(0.5))
    source = prometheus(prom.url, http)
    phases = [classify(SUCCESS, await source.read(QUERY, metric=SUCCESS)).phase for _ in range(4)]
    assert phases == [Phase.successful, Phase.error, Phase.failed, Phase.failed]


async def test_concurrency_is_bounded_by_the_shared_limit(prom: FakePrometheus) -> None:
    prom.program(QUERY, value(1, warnings=None))
    in_flight = 0
    peak = 0
    original = prom._respond

    async def counting(request: object, key: str) -> object:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        try:
            return await original(request, key)  # type: ignore[arg-type]
        finally:
            in_flight -= 1

    prom._respond = counting  # type: ignore[method-assign, assignment]
    shared = SourceHttp(concurrency=3)
    try:
        source = prometheus(prom.url, shared)
        readings = await asyncio.gather(*(source.read(QUERY, metric=SUCCESS) for _ in range(12)))
    finally:
        await shared.close()
    assert all(r.value == 1 for r in readings)
    assert peak == 3


# ---------------------------------------------------------------- health probe


async def test_probe_passes_on_a_healthy_prometheus(prom: FakePrometheus, http: SourceHttp) -> None:
    reading = await prometheus(prom.url, http).probe()
    assert reading.error is None
    assert prom.queries == ["vector(1)"]


async def test_probe_fails_on_an_outage_and_on_a_wrong_answer(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    down = await prometheus(closed_port_url(), http).probe()
    assert down.error is not None
    assert "unreachable" in down.error
    prom.program("vector(1)", empty())
    wrong = await prometheus(prom.url, http).probe()
    assert wrong.error is not None
    assert "health query vector(1)" in wrong.error


# ---------------------------------------------------------------- HTTP JSON


async def test_json_number_at_a_dotted_path(
    json_fake: FakeJsonSource, http: SourceHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_TOKEN", "tok-1")
    json_fake.program("/api/cost?release=1.0", document({"data": {"cost_per_generation": 0.113}}))
    source = json_source(
        json_fake.url + "/api/cost",
        http,
        "data.cost_per_generation",
        bearer_token_env="BILLING_TOKEN",
    )
    reading = await source.read("release=1.0", metric=SUCCESS)
    assert reading.value == 0.113
    [call] = json_fake.calls
    assert call.method == "GET"
    assert call.headers["Authorization"] == "Bearer tok-1"


async def test_json_list_indexes_and_numeric_strings(
    json_fake: FakeJsonSource, http: SourceHttp
) -> None:
    json_fake.program("/items", document({"items": [{"value": "1.5"}, {"value": 7}]}))
    first = await json_source(json_fake.url + "/items", http, "items.0.value").read("")
    last = await json_source(json_fake.url + "/items", http, "items.-1.value").read("")
    assert (first.value, last.value) == (1.5, 7.0)


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ({"data": {}}, "data.cost", "no key 'cost' in data"),
        ({"data": 3}, "data.cost", "data is int, so it has no 'cost'"),
        ({"items": [1]}, "items.5", "items has 1 items; there is no item 5"),
        ({"items": [1]}, "items.x", "items is a list; 'x' is not an index"),
        ({"data": {"cost": "cheap"}}, "data.cost", "is the text 'cheap', not a number"),
        ({"data": {"cost": True}}, "data.cost", "a boolean, not a number"),
        ({"data": {"cost": {"usd": 1}}}, "data.cost", "is an object, not a number"),
    ],
)
def test_pick_number_says_which_part_of_the_path_did_not_fit(
    doc: object, path: str, message: str
) -> None:
    value_, error = pick_number(doc, path)
    assert value_ is None
    assert error is not None
    assert message in error


def test_pick_number_null_is_no_data() -> None:
    assert pick_number({"data": {"cost": None}}, "data.cost") == (None, None)


async def test_json_failures_are_errors(json_fake: FakeJsonSource, http: SourceHttp) -> None:
    json_fake.program("/html", html(502))
    json_fake.program("/down", http_error(503))
    json_fake.program("/junk", garbage())
    json_fake.program("/shape", document({"data": []}))
    results = {
        path: await json_source(json_fake.url + path, http, "data.cost").read("")
        for path in ["/html", "/down", "/junk", "/shape"]
    }
    refused = await json_source(closed_port_url(), http, "data.cost").read("")
    assert "HTML page" in (results["/html"].error or "")
    assert "HTTP 503" in (results["/down"].error or "")
    assert "not JSON" in (results["/junk"].error or "")
    assert "data is a list" in (results["/shape"].error or "")
    assert "unreachable" in (refused.error or "")


async def test_json_timeout(json_fake: FakeJsonSource, http: SourceHttp) -> None:
    json_fake.program("/slow", hang(30))
    reading = await json_source(json_fake.url + "/slow", http, "v", timeout="200ms").read("")
    assert "did not answer within 0.2s" in (reading.error or "")


async def test_json_probe(json_fake: FakeJsonSource, http: SourceHttp) -> None:
    json_fake.program("/ok", document({"v": 1}))
    json_fake.program("/null", document({"v": None}))
    assert (await json_source(json_fake.url + "/ok", http, "v").probe()).error is None
    assert "holds no number" in (
        (await json_source(json_fake.url + "/null", http, "v").probe()).error or ""
    )


# ---------------------------------------------------------------- wiring


async def test_build_sources_shares_one_session(
    prom: FakePrometheus, json_fake: FakeJsonSource, http: SourceHttp
) -> None:
    policy = Policy.model_validate(
        {
            "version": 1,
            "sources": {
                "prom": {"type": "prometheus", "url": prom.url},
                "billing": {"type": "http_json", "url": json_fake.url + "/c", "path": "v"},
            },
        }
    )
    sources = build_sources(policy, **http.shared())
    assert isinstance(sources["prom"], PrometheusSource)
    assert isinstance(sources["billing"], HttpJsonSource)
    assert sources["prom"].http is sources["billing"].http is http


async def test_runtime_sources_share_one_session_opened_on_first_use(
    prom: FakePrometheus, engine: Engine
) -> None:
    policy = Policy.model_validate(
        {
            "version": 1,
            "sources": {
                "a": {"type": "prometheus", "url": prom.url},
                "b": {"type": "prometheus", "url": prom.url},
            },
        }
    )
    runtime = Runtime(settings=Settings(), engine=engine, policy=policy)
    sources = wire(runtime).ports.sources
    assert wire(runtime).ports.sources is sources is runtime.ports.sources
    a, b = sources["a"], sources["b"]
    assert isinstance(a, PrometheusSource)
    assert isinstance(b, PrometheusSource)
    assert a.http is b.http
    assert (await a.read("vector(1)", metric=SUCCESS)).value == 1
    assert (await b.read("vector(1)", metric=SUCCESS)).value == 1
    session = a.http.session
    assert b.http.session is session
    await runtime.source_http.close()
    assert session.closed
    # Used again after closing (a late job during shutdown), it reopens instead of crashing.
    assert (await a.read("vector(1)", metric=SUCCESS)).value == 1
    await runtime.source_http.close()


def test_source_timeout_default_is_five_seconds() -> None:
    cfg = PromConfig.model_validate({"type": "prometheus", "url": "http://p:9090"})
    assert cfg.timeout == timedelta(seconds=5)


def test_sources_can_be_built_before_the_event_loop_runs() -> None:
    # create_app builds the clients synchronously; the session opens at the first request.
    cfg = PromConfig.model_validate({"type": "prometheus", "url": "http://127.0.0.1:1"})
    source = PrometheusSource(cfg)
    assert source.http._sessions == {}
