"""The poller against real metric backends on loopback: bad values pause, a provider outage
pauses as blind and never rolls back, a person resumes after recovery, budgets and SLO burn
rates pause as `budget` and `slo`, and every transition is posted once, not once per poll."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.jobs.waves import poll_rollout
from bot.runtime import Runtime
from bot.settings import Settings
from bot.telemetry import REGISTRY
from bot.wiring import wire
from commands.core import Reply
from commands.policy import Policy
from commands.policy_file import parse_policy
from commands.ports import LocalActuator
from storage.models import Release, Rollout
from tests.conftest import run
from tests.support.clock import FakeClock
from tests.support.prometheus import (
    FakeJsonSource,
    FakePrometheus,
    document,
    http_error,
    value,
)
from tests.support.waves import audit_trail, ready_release, thread_posts

SUCCESS_Q = 'sum(rate(ok_total{release="1.0"}[1m])) / sum(rate(all_total{release="1.0"}[1m]))'
ERRORS_RE = r"code=~\"5..\""

POLICY = """
version: 1
channels: {rollouts: C0ROLLOUTS, incidents: C0INCIDENTS}
roles: {release-managers: [U0RM1], incident-commanders: [U0IC1]}
checklist:
  - {id: tests, title: Tests pass}
tiers: [staging, free]
plans:
  default:
    - {name: staging, tiers: [staging], percent: 100, observe: 10m}
    - {name: free, tiers: [free], percent: 100, observe: 10m}
  risky:
    - {name: canary, tiers: [free], percent: 5, observe: 10m, auto_rollback: true}
sources:
  prom: {type: prometheus, url: "PROM", timeout: 1s}
  billing: {type: http_json, url: "JSON/cost", path: data.cost_per_generation, timeout: 1s}
metrics:
  - id: completion_success_rate
    source: prom
    query: 'sum(rate(ok_total{release="{release}"}[{window}])) / sum(rate(all_total{release="{release}"}[{window}]))'
    success: ">= 0.97"
    interval: 1m
    error_retry: 5s
    consecutive_error_limit: 2
  - {id: provider_cost_per_generation, source: billing, query: "release={release}",
     budget: "<= 0.12", interval: 1m}
"""  # noqa: E501

SLOS = """
slos:
  - id: api-availability
    objective: 99.9
    period: 30d
    errors: 'sum(rate(http_requests_total{code=~"5.."}[{window}]))'
    total: 'sum(rate(http_requests_total[{window}]))'
    source: prom
"""


@pytest.fixture
async def prom() -> AsyncIterator[FakePrometheus]:
    fake = await FakePrometheus().start()
    fake.program(SUCCESS_Q, value(0.99))
    yield fake
    await fake.stop()


@pytest.fixture
async def billing() -> AsyncIterator[FakeJsonSource]:
    fake = await FakeJsonSource().start()
    fake.default = document({"data": {"cost_per_generation": 0.09}})
    yield fake
    await fake.stop()


def make_policy(prom: FakePrometheus, billing: FakeJsonSource, *, slos: bool = False) -> Policy:
    text = POLICY.replace("PROM", prom.url).replace("JSON", billing.url)
    return parse_policy(text + (SLOS if slos else ""))


class Harness:
    def __init__(self, engine: Engine, policy: Policy) -> None:
        self.clock = FakeClock()
        self.runtime = Runtime(settings=Settings(), engine=engine, policy=policy, clock=self.clock)
        self.actuator = LocalActuator()
        self.runtime.ports.actuator = self.actuator
        wire(self.runtime)
        self.rollout_id = 0

    async def command(self, line: str) -> Reply:
        with Session(self.runtime.engine, expire_on_commit=False) as session:
            reply = await run(self.runtime.context(session), line)
            session.commit()
        return reply

    async def start(self, version: str = "1.0", plan: str = "default") -> Reply:
        with Session(self.runtime.engine, expire_on_commit=False) as session:
            await ready_release(self.runtime.context(session), version)
            session.commit()
        reply = await self.command(f"/wave start {version} {plan}")
        with Session(self.runtime.engine) as session:
            found = session.exec(select(Rollout)).one_or_none()
            self.rollout_id = found.id if found is not None and found.id is not None else 0
        return reply

    async def cycle(self, seconds: float = 60) -> None:
        """Time passes on the fake clock, then the poller polls the rollout (as its job)."""
        self.clock.advance(seconds=seconds)
        await poll_rollout(self.runtime, self.rollout_id)

    def rollout(self) -> Rollout:
        with Session(self.runtime.engine) as session:
            rollout = session.get(Rollout, self.rollout_id)
            assert rollout is not None
            return rollout

    def release_state(self) -> str:
        with Session(self.runtime.engine) as session:
            release = session.get(Release, self.rollout().release_id)
            assert release is not None
            return release.state

    def thread(self) -> list[str]:
        with Session(self.runtime.engine) as session:
            return thread_posts(session, self.rollout_id)

    def pauses(self) -> list[str]:
        return [text for text in self.thread() if text.startswith("⏸")]


@pytest.fixture
async def harness(
    engine: Engine, prom: FakePrometheus, billing: FakeJsonSource
) -> AsyncIterator[Harness]:
    h = Harness(engine, make_policy(prom, billing))
    yield h
    await h.runtime.source_http.close()


def polls_counted(source: str, phase: str) -> float:
    labels = {"source": source, "phase": phase}
    return REGISTRY.get_sample_value("wavegate_polls_total", labels) or 0.0


async def test_healthy_values_keep_the_rollout_running(
    harness: Harness, prom: FakePrometheus, billing: FakeJsonSource
) -> None:
    before = polls_counted("prom", "successful")
    assert not (await harness.start()).error
    for _ in range(3):
        await harness.cycle()
    assert harness.rollout().state == "running"
    assert len(prom.calls_for(SUCCESS_Q)) == 3
    assert [c.key for c in billing.calls].count("/cost?release=1.0") == 3
    # The health probe ran once, before the wave's first poll.
    assert prom.queries.count("vector(1)") == 1
    assert polls_counted("prom", "successful") - before == 3


async def test_bad_values_pause_with_the_metric_value_condition_and_query(
    harness: Harness, prom: FakePrometheus
) -> None:
    await harness.start()
    await harness.cycle()
    prom.program(SUCCESS_Q, value(0.951))
    await harness.cycle()
    rollout = harness.rollout()
    assert (rollout.state, rollout.pause_kind) == ("paused", "failed")
    reason = rollout.paused_reason or ""
    assert "completion_success_rate" in reason
    assert "0.951" in reason
    assert ">= 0.97" in reason
    assert SUCCESS_Q in reason
    for _ in range(5):
        await harness.cycle()
    assert len(harness.pauses()) == 1
    assert len(prom.calls_for(SUCCESS_Q)) == 2  # a paused rollout is not polled


async def test_provider_outage_pauses_as_blind_once_and_never_rolls_back(
    harness: Harness, prom: FakePrometheus
) -> None:
    await harness.start(plan="risky")  # auto_rollback: a failure would roll back by itself
    await harness.cycle()
    prom.program(SUCCESS_Q, http_error(503, "prometheus is restarting"))
    await harness.cycle()  # the next poll is due after the interval...
    await harness.cycle(5)  # ...and retried after error_retry
    assert harness.rollout().state == "running"
    await harness.cycle(5)  # consecutive_error_limit 2: the third error in a row is blind
    rollout = harness.rollout()
    assert (rollout.state, rollout.pause_kind) == ("paused", "blind")
    assert "HTTP 503" in (rollout.paused_reason or "")
    assert harness.release_state() == "paused"
    for _ in range(10):
        await harness.cycle()
    assert harness.rollout().state == "paused"
    assert [a.action for a in harness.actuator.sent] == ["start", "pause"]
    assert len(harness.pauses()) == 1
    assert "Nothing is rolled back because metrics are unavailable" in harness.pauses()[0]


async def test_after_recovery_a_person_resumes_and_polling_goes_on(
    harness: Harness, prom: FakePrometheus
) -> None:
    await harness.start()
    prom.program(SUCCESS_Q, http_error(503))
    for _ in range(3):
        await harness.cycle(5)
    assert harness.rollout().pause_kind == "blind"
    # The provider is back; wavegate never lifts a blind pause by itself.
    prom.program(SUCCESS_Q, value(0.99))
    await harness.cycle()
    assert harness.rollout().state == "paused"
    reply = await harness.command("/wave resume 1.0")
    assert not reply.error, reply.text
    probes = prom.queries.count("vector(1)")
    await harness.cycle()
    await harness.cycle()
    assert harness.rollout().state == "running"
    assert harness.rollout().pause_kind is None
    assert prom.queries.count("vector(1)") == probes + 1  # probed again before the fresh wave


async def test_errors_are_retried_after_error_retry_not_the_interval(
    harness: Harness, prom: FakePrometheus
) -> None:
    await harness.start()
    await harness.cycle()
    prom.program(SUCCESS_Q, http_error(500))
    await harness.cycle()
    asked = len(prom.calls_for(SUCCESS_Q))
    await harness.cycle(4)  # within error_retry (5s): not yet
    assert len(prom.calls_for(SUCCESS_Q)) == asked
    await harness.cycle(1)  # 5s after the error
    assert len(prom.calls_for(SUCCESS_Q)) == asked + 1
    prom.program(SUCCESS_Q, value(0.99))
    await harness.cycle(5)
    asked = len(prom.calls_for(SUCCESS_Q))
    await harness.cycle(30)  # a good poll waits the full interval (1m)
    assert len(prom.calls_for(SUCCESS_Q)) == asked


async def test_budget_drift_pauses_as_budget_with_the_numbers(
    harness: Harness, billing: FakeJsonSource
) -> None:
    await harness.start()
    await harness.cycle()
    billing.program("/cost?release=1.0", document({"data": {"cost_per_generation": 0.14}}))
    await harness.cycle()
    rollout = harness.rollout()
    assert (rollout.state, rollout.pause_kind) == ("paused", "budget")
    reason = rollout.paused_reason or ""
    assert "provider_cost_per_generation" in reason
    assert "0.14" in reason
    assert "0.12" in reason
    for _ in range(3):
        await harness.cycle()
    assert len(harness.pauses()) == 1


async def test_a_failed_health_probe_makes_the_rollout_blind_at_once(
    harness: Harness, prom: FakePrometheus
) -> None:
    prom.program("vector(1)", http_error(502, "bad gateway"))
    await harness.start()
    await harness.cycle()
    rollout = harness.rollout()
    assert (rollout.state, rollout.pause_kind) == ("paused", "blind")
    assert "metric source prom failed its health check" in (rollout.paused_reason or "")
    assert "HTTP 502" in (rollout.paused_reason or "")
    assert [a.action for a in harness.actuator.sent] == ["start", "pause"]


# ---------------------------------------------------------------- SLOs


@pytest.fixture
async def slo_harness(
    engine: Engine, prom: FakePrometheus, billing: FakeJsonSource
) -> AsyncIterator[Harness]:
    h = Harness(engine, make_policy(prom, billing, slos=True))
    yield h
    await h.runtime.source_http.close()


def burn(prom: FakePrometheus, errors: float, total: float) -> None:
    prom.program_matching(ERRORS_RE, value(errors))
    prom.program_matching(r"^sum\(rate\(http_requests_total\[", value(total))


async def test_slo_burn_pauses_as_slo_once_with_the_rates(
    slo_harness: Harness, prom: FakePrometheus
) -> None:
    burn(prom, 0.05, 100)  # 0.05% errors: 0.5x, within budget
    await slo_harness.start()
    await slo_harness.cycle()
    assert slo_harness.rollout().state == "running"
    prom._patterns.clear()
    burn(prom, 2, 100)  # 2% errors: 20x the 99.9% budget
    await slo_harness.cycle()
    rollout = slo_harness.rollout()
    assert (rollout.state, rollout.pause_kind) == ("paused", "slo")
    reason = rollout.paused_reason or ""
    assert reason.startswith("api-availability burns its error budget at 20x over 2m")
    assert "(the wave's age)" in reason
    assert 'code=~"5.."' in reason
    for _ in range(3):
        await slo_harness.cycle()
    assert len(slo_harness.pauses()) == 1


async def test_slo_queries_are_read_at_most_once_a_minute(
    slo_harness: Harness, prom: FakePrometheus
) -> None:
    burn(prom, 0, 100)
    await slo_harness.start()
    await slo_harness.cycle(5)
    asked = len([q for q in prom.queries if "http_requests_total" in q])
    await slo_harness.cycle(5)
    assert len([q for q in prom.queries if "http_requests_total" in q]) == asked
    await slo_harness.cycle(60)
    assert len([q for q in prom.queries if "http_requests_total" in q]) > asked


async def test_exhausted_error_budget_blocks_a_start_unless_forced_with_a_reason(
    slo_harness: Harness, prom: FakePrometheus
) -> None:
    burn(prom, 2, 100)
    refused = await slo_harness.start()
    assert refused.error
    assert "error budget is exhausted" in refused.text
    assert "api-availability has used 2000% of its 30d error budget" in refused.text
    assert "--force REASON" in refused.text
    forced = await slo_harness.command('/wave start 1.0 --force "fixes the outage itself"')
    assert not forced.error, forced.text
    with Session(slo_harness.runtime.engine) as session:
        [start] = [e for e in audit_trail(session, "wave.start") if e.outcome == "ok"]
    assert start.reason == "fixes the outage itself"
    assert "error budget is exhausted" in (start.detail or "")


async def test_no_traffic_is_not_an_exhausted_budget(
    slo_harness: Harness, prom: FakePrometheus
) -> None:
    burn(prom, 0, 0)
    reply = await slo_harness.start()
    assert not reply.error, reply.text


# ---------------------------------------------------------------- minimum traffic

TRAFFIC_Q = 'sum(increase(all_total{release="1.0"}[1m]))'


@pytest.fixture
async def traffic_harness(
    engine: Engine, prom: FakePrometheus, billing: FakeJsonSource
) -> AsyncIterator[Harness]:
    text = POLICY.replace("PROM", prom.url).replace("JSON", billing.url)
    text = text.replace(
        "    consecutive_error_limit: 2\n",
        "    consecutive_error_limit: 2\n    inconclusive_limit: 1\n"
        "    min_traffic: {query: 'sum(increase(all_total{release=\"{release}\"}[{window}]))', "
        "threshold: 100}\n",
    )
    h = Harness(engine, parse_policy(text))
    yield h
    await h.runtime.source_http.close()


async def test_too_little_traffic_makes_a_bad_value_inconclusive_not_failed(
    traffic_harness: Harness, prom: FakePrometheus
) -> None:
    prom.program(TRAFFIC_Q, value(1000))
    await traffic_harness.start()
    await traffic_harness.cycle()
    assert traffic_harness.rollout().state == "running"
    # Three requests, one of them failed: 0.67 says nothing about the release.
    prom.program(TRAFFIC_Q, value(3))
    prom.program(SUCCESS_Q, value(0.67))
    await traffic_harness.cycle()
    assert traffic_harness.rollout().state == "running"  # inconclusive_limit 1
    await traffic_harness.cycle()
    rollout = traffic_harness.rollout()
    assert (rollout.state, rollout.pause_kind) == ("paused", "inconclusive")
    assert "too little traffic to judge: 3 < 100" in (rollout.paused_reason or "")
    assert TRAFFIC_Q in (rollout.paused_reason or "")


async def test_enough_traffic_lets_the_value_decide(
    traffic_harness: Harness, prom: FakePrometheus
) -> None:
    prom.program(TRAFFIC_Q, value(500))
    prom.program(SUCCESS_Q, value(0.5))
    await traffic_harness.start()
    await traffic_harness.cycle()
    assert traffic_harness.rollout().pause_kind == "failed"
