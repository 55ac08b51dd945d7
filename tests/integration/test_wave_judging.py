"""wavegate's poller, baseline judge and Alertmanager receiver against a real Prometheus 2.x and
Alertmanager on loopback (tests/support/backends.py): healthy → promote, errors → failed,
Prometheus stopped → blind, a broken query → misconfigured at the first poll, a 30 % latency
regression caught by the baseline comparison, an alerting rule → one incident → resolved."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.jobs.waves import poll_rollout
from bot.runtime import Runtime
from bot.settings import Settings
from bot.sources.http import SourceHttp
from bot.sources.prometheus import PrometheusSource
from bot.wiring import wire
from commands.analysis.compare import ComparePlan, read_comparison
from commands.analysis.measure import classify
from commands.core import Reply
from commands.policy import Metric, Policy
from commands.policy_file import parse_policy
from commands.ports import LocalActuator
from storage.models import Incident, Rollout, TimelineEntry
from tests.conftest import run, service_settings, start_service
from tests.support.backends import Backends, Exporter, Stack, wait_until
from tests.support.clock import FakeClock
from tests.support.slack import FakeSlack
from tests.support.waves import ready_release, thread_posts

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

RULES = {
    "groups": [
        {
            "name": "wavegate-judging",
            "rules": [
                {
                    "alert": "WaveCheckoutErrors",
                    "expr": "wave_checkout_errors > 5",
                    "for": "0s",
                    "labels": {"incident_class": "provider-outage", "severity": "critical"},
                    "annotations": {"summary": "checkout errors at {{ $value }}"},
                }
            ],
        }
    ]
}

POLICY = """
version: 1
channels: {rollouts: C0ROLLOUTS, incidents: C0INCIDENTS}
roles: {release-managers: [U0RM1], incident-commanders: [U0IC1]}
checklist:
  - {id: tests, title: Tests pass}
tiers: [free]
plans:
  default:
    - {name: canary, tiers: [free], percent: 10, observe: 2m}
sources:
  prom: {type: prometheus, url: "PROM", timeout: 2s, ui_url: "PROM"}
metrics:
  - id: error_ratio
    source: prom
    query: 'sum(wave_errors{release="{release}"}) / sum(wave_requests{release="{release}"})'
    failure: "> 0.05"
    min_samples: 2
    consecutive_error_limit: 1
    error_retry: 5s
EXTRA
incidents:
  provider-outage: {title: LLM provider outage, severity: 3, first_action: Fail over}
"""

BROKEN = """
  - id: latency_p95
    source: prom
    query: 'histogram_quantile(0.95, sum by (le) (rate(wave_latency_bucket{release="{release}"}[{window}]))'
    failure: "> 2"
"""  # noqa: E501

DRY_RUN_AND_SLOW = """
  - id: p99_budget_probe
    source: prom
    query: 'max(wave_p99{release="{release}"})'
    failure: "> 0.5"
    dry_run: true
  - id: request_rate
    source: prom
    query: 'sum(wave_requests{release="{release}"})'
    success: "> 0"
    min_samples: 20
"""


def make_policy(url: str, extra: str = "") -> Policy:
    return parse_policy(POLICY.replace("PROM", url).replace("EXTRA", extra))


@pytest.fixture(scope="module")
def stack_rules() -> dict[str, Any]:
    return RULES


class Harness:
    """The poller on a fake clock (instant queries are evaluated at Prometheus's own now)."""

    def __init__(self, engine: Engine, policy: Policy) -> None:
        self.clock = FakeClock()
        self.runtime = Runtime(settings=Settings(), engine=engine, policy=policy, clock=self.clock)
        self.runtime.ports.actuator = LocalActuator()
        wire(self.runtime)
        self.rollout_id = 0

    async def command(self, line: str) -> Reply:
        with Session(self.runtime.engine, expire_on_commit=False) as session:
            reply = await run(self.runtime.context(session), line)
            session.commit()
        return reply

    async def start(self, version: str) -> None:
        with Session(self.runtime.engine, expire_on_commit=False) as session:
            await ready_release(self.runtime.context(session), version)
            session.commit()
        assert not (await self.command(f"/wave start {version}")).error
        with Session(self.runtime.engine) as session:
            self.rollout_id = session.exec(select(Rollout)).one().id or 0

    async def cycle(self, seconds: float = 60) -> None:
        self.clock.advance(seconds=seconds)
        await poll_rollout(self.runtime, self.rollout_id)

    def rollout(self) -> Rollout:
        with Session(self.runtime.engine) as session:
            rollout = session.get(Rollout, self.rollout_id)
            assert rollout is not None
            return rollout

    def thread(self) -> list[str]:
        with Session(self.runtime.engine) as session:
            return thread_posts(session, self.rollout_id)


@pytest.fixture
def harness_for(engine: Engine) -> Any:
    def make(policy: Policy) -> Harness:
        return Harness(engine, policy)

    return make


async def close(harness: Harness) -> None:
    await harness.runtime.source_http.close()


async def serve_values(exporter: Exporter, release: str, *, errors: float, requests: float) -> None:
    exporter.set("wave_errors", errors, release=release)
    exporter.set("wave_requests", requests, release=release)


async def wait_scraped(stack: Stack, release: str, requests: float) -> None:
    await stack.prometheus.wait_for_value(f'sum(wave_requests{{release="{release}"}})', requests)


async def test_a_healthy_release_is_offered_for_promotion_and_promotes(
    stack: Stack, harness_for: Any
) -> None:
    await serve_values(stack.exporter, "h1", errors=1, requests=1000)
    await wait_scraped(stack, "h1", 1000)
    harness = harness_for(make_policy(stack.prometheus.url))
    try:
        await harness.start("h1")
        for _ in range(3):
            await harness.cycle()
        assert harness.rollout().verdict == "successful"
        [ready] = [t for t in harness.thread() if t.startswith("✅")]
        assert "is ready" in ready
        assert not (await harness.command("/wave promote h1")).error
        assert harness.rollout().state == "complete"
    finally:
        await close(harness)


async def test_errors_fail_the_wave_with_the_value_and_the_query(
    stack: Stack, harness_for: Any
) -> None:
    await serve_values(stack.exporter, "e1", errors=120, requests=1000)
    await wait_scraped(stack, "e1", 1000)
    harness = harness_for(make_policy(stack.prometheus.url))
    try:
        await harness.start("e1")
        await harness.cycle()
        rollout = harness.rollout()
        assert (rollout.state, rollout.pause_kind) == ("paused", "failed")
        assert "0.12 breaks > 0.05" in (rollout.paused_reason or "")
        assert 'wave_errors{release="e1"}' in (rollout.paused_reason or "")
    finally:
        await close(harness)


async def test_a_stopped_prometheus_makes_the_rollout_blind_not_failed(
    stack: Stack, backends: Backends, harness_for: Any
) -> None:
    own = await backends.start_prometheus(targets=[stack.exporter.target])
    await serve_values(stack.exporter, "b1", errors=1, requests=1000)
    await own.wait_for_value('sum(wave_requests{release="b1"})', 1000)
    harness = harness_for(make_policy(own.url))
    try:
        await harness.start("b1")
        await harness.cycle()
        assert harness.rollout().state == "running"
        own.stop()
        await harness.cycle()
        await harness.cycle(seconds=10)
        rollout = harness.rollout()
        assert (rollout.state, rollout.pause_kind) == ("paused", "blind")
        assert "metrics unavailable" in (rollout.paused_reason or "")
    finally:
        await close(harness)


async def test_a_broken_query_is_misconfigured_at_the_first_poll_naming_the_field(
    stack: Stack, harness_for: Any
) -> None:
    await serve_values(stack.exporter, "m1", errors=1, requests=1000)
    await wait_scraped(stack, "m1", 1000)
    harness = harness_for(make_policy(stack.prometheus.url, BROKEN))
    try:
        await harness.start("m1")
        await harness.cycle()
        rollout = harness.rollout()
        assert (rollout.state, rollout.pause_kind) == ("paused", "misconfigured")
        reason = rollout.paused_reason or ""
        assert "misconfigured: fix metrics[1].query" in reason
        assert "HTTP 400, bad_data" in reason
        assert "parse error" in reason
    finally:
        await close(harness)


async def test_status_shows_the_evidence_eta_and_the_dry_run_that_would_have_paused(
    stack: Stack, harness_for: Any
) -> None:
    await serve_values(stack.exporter, "d1", errors=1, requests=1000)
    stack.exporter.set("wave_p99", 0.8, release="d1")
    await stack.prometheus.wait_for_value('max(wave_p99{release="d1"})', 0.8)
    harness = harness_for(make_policy(stack.prometheus.url, DRY_RUN_AND_SLOW))
    try:
        await harness.start("d1")
        for _ in range(3):
            await harness.cycle()
        dry = [t for t in harness.thread() if t.startswith("🧪")]
        assert len(dry) == 1  # once, however many polls
        assert "would have failed and paused wave 1 (canary) at 10:01 UTC" in dry[0]
        status = (await harness.command("/wave status d1")).text
        print("\n--- /wave status against the real Prometheus ---\n" + status)
        assert "dry-run: would have paused at 10:01" in status
        assert "3 of 20 valid samples so far; needs ~17m more at one per 1m" in status
        assert f"<{stack.prometheus.url}/graph?g0.expr=" in status
    finally:
        await close(harness)


async def test_the_baseline_comparison_catches_a_30_percent_regression_and_passes_the_same(
    stack: Stack,
) -> None:
    exporter = stack.exporter
    jitter = random.Random(11)

    async def serve() -> None:
        while True:
            noise = [jitter.gauss(1.0, 0.05) for _ in range(3)]
            exporter.set("wave_latency_p95", 0.200 * noise[0], release="good")
            exporter.set("wave_latency_p95", 0.260 * noise[1], release="slow")
            exporter.set("wave_latency_p95", 0.200 * noise[2], release="same")
            await asyncio.sleep(0.5)

    feeder = asyncio.create_task(serve())
    start = datetime.now(UTC)
    http = SourceHttp()
    try:
        config = make_policy(stack.prometheus.url).sources["prom"]
        source = PrometheusSource(config, http=http)  # type: ignore[arg-type]
        metric = Metric.model_validate(
            {
                "id": "latency_p95",
                "source": "prom",
                "query": 'max(wave_latency_p95{release="{release}"})',
                "compare": {"step": "1s", "min_samples": 10},
            }
        )

        def plan(release: str) -> ComparePlan:
            q = 'max(wave_latency_p95{release="RELEASE"})'
            return ComparePlan(
                q.replace("RELEASE", release),
                q.replace("RELEASE", "good"),
                "good",
                start=start,
                end=datetime.now(UTC),
            )

        async def enough() -> bool | None:
            reading = await read_comparison(source, metric, plan("slow"))
            return True if reading.outcome != "inconclusive" else None

        await wait_until(enough, what="10 samples a side", within=40)
        await asyncio.sleep(2)  # a few more samples on both sides
        slow = await read_comparison(source, metric, plan("slow"))
        same = await read_comparison(source, metric, plan("same"))
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        await http.close()
    print("\n--- baseline verdict against the real Prometheus ---\n" + slow.detail)
    assert slow.outcome == "failed", slow.detail
    assert classify(metric, slow).phase == "failed"
    assert slow.detail.startswith("canary latency_p95 is ")
    assert "% higher than baseline good" in slow.detail
    assert same.outcome == "successful", same.detail


async def test_an_alerting_rule_declares_one_incident_and_its_resolution_is_recorded(
    stack: Stack, engine: Engine
) -> None:
    slack = await FakeSlack().start()
    policy = make_policy(stack.prometheus.url)
    runtime = Runtime(
        settings=service_settings(slack, "sqlite://"),
        engine=engine,
        policy=policy,
        clock=FakeClock(),
    )
    runner, service = await start_service(runtime, slack)
    relayed = 0

    async def relay() -> list[dict[str, Any]]:
        """Hand what Alertmanager sent to wavegate's receiver, as its webhook would."""
        nonlocal relayed
        answers = []
        for body in stack.webhook.received[relayed:]:
            response = await service.http.post(
                f"{service.url}/api/v1/alerts",
                json=body,
                headers={"Authorization": "Bearer test-api-token"},
            )
            assert response.status in (200, 201), await response.text()
            answers.append(await response.json())
        relayed = len(stack.webhook.received)
        return answers

    def ours(body: dict[str, Any], status: str) -> bool:
        return body["status"] == status and any(
            a["labels"].get("alertname") == "WaveCheckoutErrors" for a in body["alerts"]
        )

    try:
        stack.exporter.set("wave_checkout_errors", 9)
        await stack.webhook.wait_for(lambda b: ours(b, "firing"), what="a firing webhook")
        relayed = len(stack.webhook.received) - 1  # only ours
        assert [a["action"] for a in await relay()] == ["declared"]
        stack.exporter.set("wave_checkout_errors", 0)
        await stack.webhook.wait_for(lambda b: ours(b, "resolved"), what="a resolved webhook")
        answers = await relay()
        assert answers[-1]["action"] == "updated"
        with Session(engine) as session:
            [incident] = session.exec(select(Incident)).all()
            assert (incident.incident_class, incident.severity) == ("provider-outage", 1)
            texts = [e.text for e in session.exec(select(TimelineEntry)) if e.kind == "alert"]
        assert any("resolved at 20" in t for t in texts), texts
        assert any(f"source: {stack.prometheus.url}/graph" in t for t in texts), texts
    finally:
        await service.http.close()
        await runner.cleanup()
        await slack.stop()


async def test_policy_check_live_names_each_refused_query_by_its_field(stack: Stack) -> None:
    from bot.sources.registry import build_sources
    from commands.analysis.live_check import live_problems

    http = SourceHttp()
    try:
        good = make_policy(stack.prometheus.url)
        assert await live_problems(good, build_sources(good, **http.shared())) == []
        broken = make_policy(stack.prometheus.url, BROKEN)
        problems = await live_problems(broken, build_sources(broken, **http.shared()))
    finally:
        await http.close()
    [problem] = problems
    assert problem.startswith("metrics[1].query: Prometheus at ")
    assert "HTTP 400, bad_data" in problem
