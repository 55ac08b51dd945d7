"""SLO arithmetic: durations for PromQL, windows shortened to the wave's age, multi-window burn
rates, error budgets, and reading the ratios through a real source on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.sources.http import SourceHttp
from bot.sources.prometheus import PrometheusSource
from commands.analysis.slo import (
    BURN_RULES,
    ErrorBudget,
    burn_rate,
    error_ratio,
    evaluate_burn,
    measure_budget,
    measure_burn,
    needed_windows,
    prom_duration,
    slo_queries,
    windows_for,
)
from commands.policy import PrometheusSource as PromConfig
from commands.policy import Slo
from commands.values import parse_duration
from tests.support.prometheus import FakePrometheus, empty, http_error, value

H = timedelta(hours=1)
M = timedelta(minutes=1)
D = timedelta(days=1)

SLO = Slo.model_validate(
    {
        "id": "api-availability",
        "objective": 99.9,
        "period": "30d",
        "errors": 'sum(rate(http_requests_total{code=~"5..",release="{release}"}[{window}]))',
        "total": 'sum(rate(http_requests_total{release="{release}"}[{window}]))',
        "source": "prom",
    }
)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(300, "5m"), (3600, "1h"), (86400, "1d"), (259200, "3d"), (90, "90s"), (37.4, "37s"),
     (5400, "90m"), (0.2, "1s")],
)  # fmt: skip
def test_prom_duration(seconds: float, expected: str) -> None:
    assert prom_duration(timedelta(seconds=seconds)) == expected


@pytest.mark.parametrize(
    ("rule", "age", "expected"),
    [
        (0, None, (H, 5 * M)),
        (0, 2 * H, (H, 5 * M)),
        (0, 20 * M, (20 * M, 5 * M)),
        (0, 3 * M, (3 * M, 3 * M)),
        (0, 10 * timedelta(seconds=1), (M, M)),
        (1, 2 * H, (2 * H, 30 * M)),
        (2, 10 * H, (10 * H, 2 * H)),
        (3, 2 * D, (2 * D, 6 * H)),
        (3, 4 * D, (3 * D, 6 * H)),
    ],
)
def test_windows_shrink_to_the_wave_age(
    rule: int, age: timedelta | None, expected: tuple[timedelta, timedelta]
) -> None:
    assert windows_for(BURN_RULES[rule], age) == expected


def test_needed_windows_for_an_old_wave_are_the_rules_distinct_windows() -> None:
    assert needed_windows(None) == [5 * M, 30 * M, H, 2 * H, 6 * H, D, 3 * D]
    # A 20-minute-old wave needs only its age and the short windows below it.
    assert needed_windows(20 * M) == [5 * M, 20 * M]


@pytest.mark.parametrize(
    ("errors", "total", "ratio"),
    [(1, 100, 0.01), (0, 100, 0.0), (None, 100, None), (1, None, None), (1, 0, None),
     (float("nan"), 1, None), (-1, 10, 0.0)],
)  # fmt: skip
def test_error_ratio(errors: float | None, total: float | None, ratio: float | None) -> None:
    assert error_ratio(errors, total) == ratio


def test_burn_rate_is_ratio_over_the_allowed_ratio() -> None:
    assert burn_rate(0.01, SLO) == pytest.approx(10.0)
    assert burn_rate(0.0144, SLO) == pytest.approx(14.4)


def ratios(**burns: float | None) -> dict[timedelta, float | None]:
    """Error ratios per window from burn rates: `h1=15` → a 1h window burning at 15x."""
    names = {"m5": 5 * M, "m30": 30 * M, "h1": H, "h2": 2 * H, "h6": 6 * H, "d1": D, "d3": 3 * D}
    return {names[k]: (None if v is None else v * 0.001) for k, v in burns.items()}


CALM = {"m5": 0.5, "m30": 0.5, "h1": 0.5, "h2": 0.5, "h6": 0.5, "d1": 0.5, "d3": 0.5}


@pytest.mark.parametrize(
    ("burns", "severity", "fired"),
    [
        ({}, None, []),
        ({"h1": 15, "m5": 15}, "page", [(H, 5 * M)]),
        # The long window burns but the short one has recovered: no page.
        ({"h1": 15, "m5": 2}, None, []),
        # A brief spike in the short window alone is not enough.
        ({"h1": 2, "m5": 50}, None, []),
        ({"h6": 6, "m30": 6}, "page", [(6 * H, 30 * M)]),
        ({"d1": 3, "h2": 3.1}, "warn", [(D, 2 * H)]),
        ({"d3": 1, "h6": 1}, "warn", [(3 * D, 6 * H)]),
        ({"d3": 0.99, "h6": 1.5}, None, []),
        ({"h1": 15, "m5": 15, "d3": 1, "h6": 1}, "page", [(H, 5 * M), (3 * D, 6 * H)]),
        # No traffic in a window cannot fire its rule.
        ({"h1": None, "m5": 50}, None, []),
    ],
)
def test_multi_window_rules(
    burns: dict[str, float | None], severity: str | None, fired: list[tuple[timedelta, timedelta]]
) -> None:
    status = evaluate_burn(SLO, ratios(**{**CALM, **burns}))
    assert status.severity == severity
    assert [(a.long, a.short) for a in status.alerts] == fired


def test_a_young_wave_is_judged_over_its_age() -> None:
    age = 20 * M
    status = evaluate_burn(SLO, {20 * M: 0.02, 5 * M: 0.02}, age=age)
    assert status.severity == "page"
    worst = status.worst
    assert worst is not None
    assert (worst.long, worst.short) == (20 * M, 5 * M)
    assert "over 20m (the wave's age)" in worst.explain()


def test_burn_explanation_names_the_slo_rates_windows_and_queries() -> None:
    status = evaluate_burn(SLO, ratios(**{**CALM, "h1": 16.2, "m5": 15}))
    text = status.explain()
    assert text.startswith("api-availability burns its error budget at 16.2x over 1h and 15x")
    assert "page: both ≥ 14.4x" in text
    assert "objective 99.9%" in text
    assert SLO.errors in text
    assert SLO.total in text


@pytest.mark.parametrize(
    ("ratio", "consumed", "exhausted", "words"),
    [
        (None, None, False, "no traffic over 30d"),
        (0.0, 0.0, False, "100% left"),
        (0.0005, 0.5, False, "used 50% of its 30d error budget (50% left)"),
        (0.001, 1.0, True, "(exhausted)"),
        (0.0012, 1.2, True, "used 120%"),
    ],
)
def test_error_budget(
    ratio: float | None, consumed: float | None, exhausted: bool, words: str
) -> None:
    budget = ErrorBudget(SLO, ratio)
    assert budget.consumed == (None if consumed is None else pytest.approx(consumed))
    assert budget.exhausted is exhausted
    assert words in budget.explain()


def test_window_templating_leaves_promql_braces_alone() -> None:
    errors, total = slo_queries(SLO, 5 * M, release="1.0", wave="staging", tiers=["staging"])
    assert errors == 'sum(rate(http_requests_total{code=~"5..",release="1.0"}[5m]))'
    assert total == 'sum(rate(http_requests_total{release="1.0"}[5m]))'


# ---------------------------------------------------------------- through real HTTP


@pytest.fixture
async def source(prom: FakePrometheus) -> AsyncIterator[PrometheusSource]:
    http = SourceHttp(concurrency=8)
    cfg = PromConfig.model_validate({"type": "prometheus", "url": prom.url})
    yield PrometheusSource(cfg, **http.shared())
    await http.close()


def program_ratio(prom: FakePrometheus, window: str, errors: float, total: float) -> None:
    e, t = slo_queries(SLO, parse_duration(window), release="1.0", wave="w", tiers=[])
    prom.program(e, value(errors))
    prom.program(t, value(total))


async def test_measure_burn_reads_each_window_and_pages(
    prom: FakePrometheus, source: PrometheusSource
) -> None:
    for window in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]:
        program_ratio(prom, window, 0.1, 100)  # 0.1% errors: 1x
    program_ratio(prom, "1h", 2, 100)  # 20x
    program_ratio(prom, "5m", 3, 100)  # 30x
    status, problems = await measure_burn(SLO, source, age=None, release="1.0", wave="w")
    assert problems == ()
    assert status is not None
    assert status.severity == "page"
    assert len(prom.queries) == 14


async def test_measure_burn_reports_provider_trouble_instead_of_a_verdict(
    prom: FakePrometheus, source: PrometheusSource
) -> None:
    prom.default = http_error(503)
    status, problems = await measure_burn(SLO, source, age=10 * M, release="1.0")
    assert status is None
    assert problems
    assert "HTTP 503" in problems[0]


async def test_measure_budget_over_the_period(
    prom: FakePrometheus, source: PrometheusSource
) -> None:
    program_ratio(prom, "30d", 15, 10000)
    budget, problems = await measure_budget(SLO, source, release="1.0", wave="w")
    assert problems == ()
    assert budget is not None
    assert budget.exhausted
    assert budget.consumed == pytest.approx(1.5)


async def test_measure_budget_with_no_traffic_is_not_exhausted(
    prom: FakePrometheus, source: PrometheusSource
) -> None:
    prom.default = empty()
    budget, _ = await measure_budget(SLO, source, release="1.0")
    assert budget is not None
    assert not budget.exhausted
