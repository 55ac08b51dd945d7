"""The real-backend harness proves itself: Prometheus scrapes the exporter, Alertmanager tells."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.backends import (
    Backends,
    Stack,
    port_refuses,
    wait_until,
)

# One stack for the module: Prometheus needs ~5 s after starting before it scrapes a new target,
# which each test would otherwise pay. Tests keep apart by metric name and release label.
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ERROR_RULES = {
    "groups": [
        {
            "name": "wavegate-test",
            "rules": [
                {
                    "alert": "CheckoutErrors",
                    "expr": "errors > 5",
                    "for": "0s",
                    "labels": {"incident_class": "service-degradation", "severity": "critical"},
                    "annotations": {"summary": "checkout errors at {{ $value }}"},
                }
            ],
        }
    ]
}


@pytest.fixture(scope="module")
def stack_rules() -> dict[str, Any]:
    return ERROR_RULES


async def test_prometheus_returns_the_value_the_exporter_serves_and_follows_a_change(
    stack: Stack,
) -> None:
    exporter, prometheus = stack.exporter, stack.prometheus
    exporter.set("http_requests_total", 120, code="500", release="1.0")
    exporter.set("http_requests_total", 3, code="500", release="0.9")

    query = 'http_requests_total{code="500",release="1.0"}'
    assert await prometheus.wait_for_value(query, 120) == 120
    status, body = await prometheus.query(query)
    assert status == 200
    [series] = body["data"]["result"]
    assert series["metric"] == {
        "__name__": "http_requests_total",
        "code": "500",
        "release": "1.0",
        "instance": exporter.target,
        "job": "exporter",
    }

    scrapes = exporter.scrapes
    exporter.set("http_requests_total", 180, code="500", release="1.0")
    assert await prometheus.wait_for_value(query, 180) == 180
    assert exporter.scrapes > scrapes


async def test_histogram_buckets_give_a_quantile(stack: Stack) -> None:
    # 50 requests under 100 ms, 90 under 500 ms, 100 in all: the median is the first bound.
    stack.exporter.set_histogram(
        "request_seconds", {0.1: 50, 0.5: 90, 1.0: 100}, total=31.0, release="1.0"
    )

    p50 = await stack.prometheus.wait_for_value(
        'histogram_quantile(0.5, request_seconds_bucket{release="1.0"})'
    )

    assert p50 == pytest.approx(0.1)
    assert await stack.prometheus.value('request_seconds_count{release="1.0"}') == 100


async def test_query_range_returns_several_samples(stack: Stack) -> None:
    stack.exporter.set("p95_seconds", 0.2, release="1.0")
    await stack.prometheus.wait_for_value('p95_seconds{release="1.0"}', 0.2)

    async def several() -> list[tuple[float, float]] | None:
        samples = await stack.prometheus.query_range('p95_seconds{release="1.0"}', seconds=30)
        return samples if len(samples) >= 3 else None

    samples = await wait_until(several, what="3 samples from query_range")
    assert {value for _, value in samples} == {0.2}
    times = [t for t, _ in samples]
    assert times == sorted(times)
    assert len(set(times)) == len(times)


@pytest.mark.parametrize(
    ("promql", "status", "error_type", "says"),
    [
        pytest.param("sum(rate(dup_left[5m])", 400, "bad_data", "parse error", id="unclosed"),
        pytest.param("nosuchfn(dup_left)", 400, "bad_data", "unknown function", id="function"),
        # Valid PromQL that only fails on the data: still the query's fault, answered 422.
        pytest.param("dup_left / on() dup_right", 422, "execution", "duplicate series", id="join"),
    ],
)
async def test_a_bad_query_is_answered_as_the_querys_fault(
    stack: Stack, promql: str, status: int, error_type: str, says: str
) -> None:
    stack.exporter.set("dup_left", 1)
    stack.exporter.set("dup_right", 1, side="a")
    stack.exporter.set("dup_right", 2, side="b")
    await stack.prometheus.wait_for_value("count(dup_right)", 2)

    answer_status, body = await stack.prometheus.query(promql)

    assert answer_status == status
    assert (body["status"], body["errorType"]) == ("error", error_type)
    assert says in body["error"]


async def test_a_stopped_prometheus_refuses_connections_and_restarts(
    backends: Backends, stack: Stack
) -> None:
    prometheus = await backends.start_prometheus(targets=[stack.exporter.target])
    assert await prometheus.value("vector(1)") == 1

    prometheus.stop()
    assert port_refuses(prometheus.port)

    await prometheus.restart()
    assert not port_refuses(prometheus.port)
    assert await prometheus.value("vector(2)") == 2


def alert_named(body: dict[str, Any], status: str) -> bool:
    return body["status"] == status and any(
        a["labels"].get("alertname") == "CheckoutErrors" for a in body["alerts"]
    )


async def test_an_alerting_rule_fires_through_alertmanager_and_resolves(stack: Stack) -> None:
    exporter, prometheus, webhook = stack.exporter, stack.prometheus, stack.webhook
    exporter.set("errors", 0, release="1.0")
    await prometheus.wait_for_value('errors{release="1.0"}', 0)
    assert webhook.received == []

    exporter.set("errors", 9, release="1.0")
    fired = await webhook.wait_for(lambda b: alert_named(b, "firing"), what="a firing webhook")

    assert fired["version"] == "4"
    assert fired["receiver"] == "webhook"
    assert fired["groupKey"] == '{}:{alertname="CheckoutErrors"}'
    assert fired["externalURL"] == stack.alertmanager.url  # the trailing "/" is dropped
    [alert] = fired["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "CheckoutErrors",
        "incident_class": "service-degradation",
        "severity": "critical",
        "release": "1.0",
        "instance": exporter.target,
        "job": "exporter",
    }
    assert alert["annotations"] == {"summary": "checkout errors at 9"}
    assert alert["generatorURL"].startswith(f"{prometheus.url}/graph?g0.expr=errors+%3E+5")
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"  # a firing alert has no end yet

    exporter.set("errors", 0, release="1.0")
    resolved = await webhook.wait_for(
        lambda b: alert_named(b, "resolved"), what="a resolved webhook"
    )

    assert resolved["groupKey"] == fired["groupKey"]
    [alert] = resolved["alerts"]
    assert alert["status"] == "resolved"
    assert alert["fingerprint"] == fired["alerts"][0]["fingerprint"]
    assert alert["endsAt"] > alert["startsAt"]
