"""Guardrails: plain-words explanations, the budget and SLO gates, the error-budget start gate
and the health probe before a wave."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.sources.http import SourceHttp
from bot.sources.prometheus import PrometheusSource
from commands.analysis.guardrails import (
    budget_gate,
    exhausted_budgets,
    explain_metric,
    probe_sources,
    probe_wave,
    slo_gate,
    violation,
    wave_source_names,
)
from commands.analysis.measure import Phase, Poll, Reading, classify
from commands.analysis.slo import ErrorBudget, evaluate_burn
from commands.core import Context
from commands.policy import Metric, Policy, Slo
from commands.ports import Ports
from commands.values import parse_condition
from tests.support.prometheus import FakePrometheus, closed_port_url, http_error

SUCCESS_QUERY = "sum(rate(ok[5m])) / sum(rate(all[5m]))"


def metric(**fields: object) -> Metric:
    return Metric.model_validate({"id": "m", "source": "prom", **fields})


def polls(*values: float | str | None) -> list[Poll]:
    """Numbers are valid polls (phase from nothing: the gates look at values); "error" is an
    errored poll; None an empty one."""
    out = []
    for v in values:
        if v == "error":
            out.append(Poll(Phase.error, None, "Prometheus at x is unreachable"))
        elif v is None:
            out.append(Poll(Phase.inconclusive, None, "no data"))
        else:
            assert isinstance(v, float | int)
            out.append(Poll(Phase.successful, float(v), ""))
    return out


@pytest.mark.parametrize(
    ("condition", "by_holding", "words"),
    [
        (">= 0.97", False, "< 0.97"),
        ("> 2500", True, "> 2500"),
        ("<= 0.12", False, "> 0.12"),
        ("== 0", False, "!= 0"),
        ("between 0.9 1", False, "outside 0.9 to 1"),
    ],
)
def test_violation_words(condition: str, by_holding: bool, words: str) -> None:
    assert violation(parse_condition(condition), broken_when_holds=by_holding) == words


def test_explanation_of_a_missed_success_condition() -> None:
    m = metric(id="completion_success_rate", success=">= 0.97", query=SUCCESS_QUERY)
    text = explain_metric(m, polls(0.99, 0.96, 0.98, 0.95, 0.951))
    assert text == (
        "completion_success_rate 0.951 < 0.97 (3 of last 5 polls); "
        "last values 0.99, 0.96, 0.98, 0.95, 0.951; "
        f"query: {SUCCESS_QUERY}"
    )


def test_explanation_of_a_failure_condition_with_unit_counts_only_recent_polls() -> None:
    m = metric(id="preview_startup_p95_ms", failure="> 2500", unit="ms", query="q")
    text = explain_metric(m, polls(3000, 3000, 100, 100, 100, 100, 2600))
    assert text.startswith("preview_startup_p95_ms 2600 ms > 2500 (1 of last 5 polls)")


def test_explanation_when_the_provider_is_down() -> None:
    m = metric(success=">= 1", query="q")
    text = explain_metric(m, polls("error", "error"))
    assert text.startswith("m: no data — the last 2 polls failed: Prometheus at x is unreachable")


def test_explanation_of_inconclusive_polls() -> None:
    text = explain_metric(metric(success=">= 1", query="q"), polls(None, None, 1))
    assert text.startswith("m: 1 successful, 2 inconclusive of last 3 polls")


@pytest.mark.parametrize(
    ("values", "failure_limit", "drifts"),
    [
        ((0.1, 0.11), 0, False),
        ((0.1, 0.13), 0, True),
        ((0.13, 0.1), 1, False),
        ((0.13, 0.14), 1, True),
        # An unreadable bill is blind, not over budget.
        (("error", "error", None), 0, False),
    ],
)
def test_budget_gate(
    values: tuple[float | str | None, ...], failure_limit: int, drifts: bool
) -> None:
    m = metric(
        id="provider_cost_per_generation",
        source="billing",
        budget="<= 0.12",
        failure_limit=failure_limit,
    )
    drift = budget_gate(m, polls(*values))
    assert (drift is not None) is drifts
    if drift is not None:
        assert drift.kind == "budget"
        assert drift.key == "budget:provider_cost_per_generation"
        assert "> 0.12 budget" in drift.reason


SLO = Slo.model_validate(
    {
        "id": "api",
        "objective": 99.9,
        "errors": "e[{window}]",
        "total": "t[{window}]",
        "source": "prom",
    }
)
W = {
    timedelta(minutes=5): 0.0,
    timedelta(minutes=30): 0.0,
    timedelta(hours=1): 0.0,
    timedelta(hours=2): 0.0,
    timedelta(hours=6): 0.0,
    timedelta(days=1): 0.0,
    timedelta(days=3): 0.0,
}


def test_slo_gate_prefers_the_page() -> None:
    warn = {**W, timedelta(days=3): 0.002, timedelta(hours=6): 0.002}
    page = {**W, timedelta(hours=1): 0.02, timedelta(minutes=5): 0.02}
    other = SLO.model_copy(update={"id": "checkout"})
    drift = slo_gate([evaluate_burn(SLO, warn), evaluate_burn(other, page)])
    assert drift is not None
    assert drift.kind == "slo"
    assert drift.subject == "checkout"
    assert drift.key == "slo:checkout:page"
    assert "burns its error budget at 20x over 1h" in drift.reason


def test_slo_gate_is_quiet_when_nothing_burns() -> None:
    assert slo_gate([evaluate_burn(SLO, W)]) is None


def test_only_exhausted_error_budgets_block_a_start() -> None:
    """The start gate (commands/wave/rules/advance.py) refuses on these, in these words."""
    spent = exhausted_budgets([ErrorBudget(SLO, 0.002), ErrorBudget(SLO, 0.0005)])
    assert [budget.ratio for budget in spent] == [0.002]
    assert "api has used 200% of its 30d error budget" in spent[0].explain()
    assert exhausted_budgets([ErrorBudget(SLO, 0.0005)]) == []


# ---------------------------------------------------------------- health probe


def two_source_policy(up: str, down: str) -> Policy:
    return Policy.model_validate(
        {
            "version": 1,
            "tiers": ["staging"],
            "plans": {"default": [{"name": "staging", "tiers": ["staging"], "percent": 100,
                                   "observe": "1h"}]},
            "sources": {
                "up": {"type": "prometheus", "url": up},
                "down": {"type": "prometheus", "url": down, "timeout": "1s"},
                "unused": {"type": "prometheus", "url": down},
            },
            "metrics": [
                {"id": "a", "source": "up", "query": "a", "success": ">= 1"},
                {"id": "b", "source": "down", "query": "b", "success": ">= 1"},
            ],
        }
    )  # fmt: skip


async def test_probe_wave_names_the_source_that_fails(
    prom: FakePrometheus, http: SourceHttp, ctx: Context
) -> None:
    policy = two_source_policy(prom.url, closed_port_url())
    wave = policy.plans["default"][0]
    assert wave_source_names(policy, wave) == ["up", "down"]
    sources = {
        name: PrometheusSource(cfg, **http.shared())  # type: ignore[arg-type]
        for name, cfg in policy.sources.items()
    }
    probe_ctx = Context(
        session=ctx.session, policy=policy, clock=ctx.clock, ports=Ports(sources=sources)
    )
    problems = await probe_wave(probe_ctx, wave)
    assert len(problems) == 1
    assert problems[0].startswith("metric source down failed its health check: Prometheus at")
    assert "unreachable" in problems[0]
    assert prom.queries == ["vector(1)"]


async def test_probe_sources_treats_a_missing_source_as_a_problem_and_no_probe_as_healthy(
    prom: FakePrometheus, http: SourceHttp
) -> None:
    prom.program("vector(1)", http_error(503))
    policy = two_source_policy(prom.url, prom.url)
    broken = PrometheusSource(policy.sources["up"], **http.shared())  # type: ignore[arg-type]

    class NoProbe:
        pass

    found = await probe_sources({"up": broken, "demo": NoProbe()}, ["up", "demo", "gone"])
    assert set(found) == {"up", "gone"}
    assert "HTTP 503" in found["up"]
    assert "not available" in found["gone"]


def test_low_traffic_is_inconclusive_whatever_the_value_or_on_empty() -> None:
    m = metric(success=">= 0.97", on_empty="successful", query="q")
    poll = classify(m, Reading(value=0.5, low_traffic="too little traffic to judge: 3 < 100"))
    assert poll.phase is Phase.inconclusive
    assert poll.detail.startswith("too little traffic to judge")
    assert classify(m, Reading(value=0.99)).phase is Phase.successful
