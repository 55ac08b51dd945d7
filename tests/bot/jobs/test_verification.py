"""The observability checklist item is verified by metrics: it passes only when every listed
metric returns data (a fake Prometheus on loopback answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.jobs.checklist import verification_interval, verify_by_metrics
from bot.jobs.scheduler import build_scheduler
from bot.runtime import Runtime
from bot.settings import Settings
from bot.wiring import wire
from commands.policy import Policy
from commands.ready.checklist import ItemState, evaluate, register_release
from commands.ready.verification import verify_and_record
from storage.models import CheckResult, OutboxPost, Release
from tests.conftest import ROLLOUTS
from tests.support.clock import FakeClock
from tests.support.prometheus import FakePrometheus, empty, http_error, value

QUERIES = {
    "api_request_rate": 'sum(rate(http_requests_total{path="api",release="{release}"}[{window}]))',
    "agent_request_rate": 'sum(rate(http_requests_total{path="agent"}[{window}]))',
    "sandbox_request_rate": 'sum(rate(http_requests_total{path="sandbox"}[{window}]))',
}


def rendered(metric: str, release: str = "1.0") -> str:
    return QUERIES[metric].replace("{release}", release).replace("{window}", "5m")


@pytest.fixture
def observed_policy(prom: FakePrometheus) -> Policy:
    return Policy.model_validate(
        {
            "version": 1,
            "channels": {"rollouts": ROLLOUTS},
            "checklist": [
                {
                    "id": "observability",
                    "title": "Observability is enabled for API, agent and sandbox paths",
                    "verify": {"by": "metric", "metrics": list(QUERIES)},
                },
                {"id": "runbook", "title": "Runbook", "verify": {"by": "person"}},
            ],
            "sources": {"prom": {"type": "prometheus", "url": prom.url}},
            "metrics": [
                {"id": m, "source": "prom", "query": q, "success": "> 0", "interval": "30s"}
                for m, q in QUERIES.items()
            ],
        }
    )


@pytest.fixture
async def runtime(engine: Engine, observed_policy: Policy) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings=Settings(), engine=engine, policy=observed_policy, clock=FakeClock())
    wire(runtime)
    with Session(engine) as session:
        register_release("1.0", runtime.context(session), actor="U0RM1")
        session.commit()
    yield runtime
    await runtime.source_http.close()


def item_state(runtime: Runtime) -> tuple[ItemState, str | None]:
    with Session(runtime.engine) as session:
        release = session.exec(select(Release)).one()
        status = next(
            s
            for s in evaluate(release, runtime.context(session)).items
            if s.item.id == "observability"
        )
        return status.state, status.evidence


async def test_passes_when_every_metric_returns_data(
    prom: FakePrometheus, runtime: Runtime
) -> None:
    for metric in QUERIES:
        prom.program(rendered(metric), value(12.5))
    await verify_by_metrics(runtime)
    state, evidence = item_state(runtime)
    assert state is ItemState.passed
    assert evidence == (
        "every metric returned data: api_request_rate=12.5, agent_request_rate=12.5, "
        "sandbox_request_rate=12.5"
    )
    assert sorted(prom.queries) == sorted(rendered(m) for m in QUERIES)
    with Session(runtime.engine) as session:
        [result] = session.exec(select(CheckResult)).all()
        assert result.actor == "wavegate"
        posts = [(p.text, p.thread_key) for p in session.exec(select(OutboxPost))]
    # The pass is a reply in the release's readiness thread, not a post of its own.
    assert any("observability* passed" in text and key == "readiness:1" for text, key in posts)


async def test_one_silent_path_keeps_it_pending_and_says_which(
    prom: FakePrometheus, runtime: Runtime
) -> None:
    prom.program(rendered("api_request_rate"), value(3))
    prom.program(rendered("agent_request_rate"), value(1))
    prom.program(rendered("sandbox_request_rate"), empty())
    with Session(runtime.engine) as session:
        ctx = runtime.context(session)
        wire(runtime)  # ctx.ports are the runtime's
        release = session.exec(select(Release)).one()
        item = runtime.policy.checklist[0]
        verification = await verify_and_record(release, item, ctx)
        session.commit()
    assert not verification.passed
    assert verification.explain() == (
        "observability of 1.0 is not verified: 1 of 3 metrics returned no data — "
        f"sandbox_request_rate returned no data (query: {rendered('sandbox_request_rate')})"
    )
    assert item_state(runtime)[0] is ItemState.pending


async def test_a_metric_backend_outage_verifies_nothing(
    prom: FakePrometheus, runtime: Runtime
) -> None:
    prom.default = http_error(503)
    await verify_by_metrics(runtime)
    assert item_state(runtime)[0] is ItemState.pending
    with Session(runtime.engine) as session:
        assert session.exec(select(CheckResult)).all() == []


async def test_a_passed_item_is_not_read_again(prom: FakePrometheus, runtime: Runtime) -> None:
    prom.default = value(1)
    await verify_by_metrics(runtime)
    asked = len(prom.queries)
    await verify_by_metrics(runtime)
    assert len(prom.queries) == asked == 3
    with Session(runtime.engine) as session:
        assert len(session.exec(select(CheckResult)).all()) == 1


async def test_recovery_after_no_data_passes_on_the_next_run(
    prom: FakePrometheus, runtime: Runtime
) -> None:
    prom.default = empty()
    await verify_by_metrics(runtime)
    assert item_state(runtime)[0] is ItemState.pending
    prom.default = value(4)
    await verify_by_metrics(runtime)
    assert item_state(runtime)[0] is ItemState.passed


def test_the_job_runs_at_the_metrics_interval(runtime: Runtime) -> None:
    assert verification_interval(runtime) == timedelta(seconds=30)
    job = build_scheduler(runtime).get_job("verify-by-metrics")
    assert job is not None
    assert job.trigger.interval == timedelta(seconds=30)


async def test_without_metric_items_nothing_is_read(prom: FakePrometheus, engine: Engine) -> None:
    policy = Policy.model_validate({"version": 1})
    runtime = Runtime(settings=Settings(), engine=engine, policy=policy, clock=FakeClock())
    await verify_by_metrics(runtime)
    assert prom.calls == []
    await runtime.source_http.close()
