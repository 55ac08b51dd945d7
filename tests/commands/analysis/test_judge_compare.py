"""The baseline comparison and misconfiguration mapped onto the judge's verdicts, the canary
score over a wave's compared metrics, and the evidence ETAs, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commands.analysis.checks import traffic_eta
from commands.analysis.judge import Verdict, judge_metric, judge_wave
from commands.analysis.measure import MISCONFIGURED, Phase, Poll, Reading, classify
from commands.analysis.polls import dry_run_findings, dry_run_line, dry_run_report
from commands.analysis.score import wave_score
from commands.policy import Metric, Score

S, F, N, E = Phase.successful, Phase.failed, Phase.inconclusive, Phase.error
T0 = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def compared(**overrides: object) -> Metric:
    fields: dict[str, object] = {"id": "p95", "source": "prom", "query": "q", "compare": {}}
    fields.update(overrides)
    return Metric.model_validate(fields)


def polls(*phases: Phase) -> list[Poll]:
    return [
        Poll(p, 1.0 if p != E else None, f"poll {i}", at=T0 + timedelta(minutes=i))
        for i, p in enumerate(phases)
    ]


COMPARE_CASES = [
    # (case, polls, window passed, verdict, reason starts with)
    ("nothing yet", [], False, Verdict.running, "no comparison yet"),
    ("too few samples while the window runs waits", [N, N], False, Verdict.running, "poll 1"),
    ("too few samples after the window asks a person", [N], True, Verdict.inconclusive, "poll 0"),
    ("a pass before the window is over runs", [N, S], False, Verdict.running, "passes so far"),
    ("a pass after the window passes", [N, S], True, Verdict.successful, "poll 1"),
    ("a regression fails at once", [S, F], False, Verdict.failed, "poll 1"),
    ("the latest comparison decides", [N, N, S], True, Verdict.successful, "poll 2"),
    ("errors are not comparisons", [S, E], True, Verdict.successful, "poll 0"),
    ("errors over the limit are blind", [S, E, E, E, E, E], False, Verdict.error, "metrics"),
]


@pytest.mark.parametrize(
    ("case", "taken", "passed", "expected", "reason"),
    COMPARE_CASES,
    ids=[c[0] for c in COMPARE_CASES],
)
def test_a_comparison_maps_onto_the_judges_verdicts(
    case: str, taken: list[Phase], passed: bool, expected: Verdict, reason: str
) -> None:
    mv = judge_metric(compared(), polls(*taken), window_passed=passed)
    assert mv.verdict == expected, case
    assert mv.reason.startswith(reason), mv.reason


def test_failure_limit_lets_a_comparison_fail_more_than_once_first() -> None:
    metric = compared(failure_limit=1)
    assert judge_metric(metric, polls(F), window_passed=False).verdict == Verdict.running
    failed = judge_metric(metric, polls(F, F), window_passed=False)
    assert (failed.verdict, failed.decided_at) == (Verdict.failed, T0 + timedelta(minutes=1))


def test_a_comparison_reading_becomes_its_outcome() -> None:
    metric = compared()
    reading = Reading(value=0.26, outcome="failed", detail="canary p95 is 30 % higher")
    assert classify(metric, reading) == Poll(F, 0.26, "canary p95 is 30 % higher")
    assert classify(metric, Reading(outcome="inconclusive", detail="x")).phase == N


def test_a_refused_query_is_an_error_at_the_first_poll_naming_the_field() -> None:
    metric = Metric.model_validate({"id": "m", "source": "prom", "query": "sum(", "success": "> 0"})
    reading = Reading(error="HTTP 400, bad_data: parse error", detail="q", misconfigured="query")
    poll = classify(metric, reading, path="metrics[3]")
    assert poll.phase == E
    assert poll.detail.startswith(f"{MISCONFIGURED}metrics[3].query: HTTP 400, bad_data")
    assert poll.misconfigured
    mv = judge_metric(metric, [poll], window_passed=False)
    assert (mv.verdict, mv.misconfigured) == (Verdict.error, True)
    wave = judge_wave([mv], window_passed=False)
    assert wave.misconfigured
    assert "fix metrics[3].query" in wave.reason


def test_a_source_field_is_named_as_it_stands() -> None:
    metric = Metric.model_validate({"id": "c", "source": "billing", "budget": "<= 1"})
    reading = Reading(error="no key 'data'", misconfigured="sources.billing.path")
    assert classify(metric, reading, path="metrics[1]").detail.startswith(
        f"{MISCONFIGURED}sources.billing.path: "
    )


def test_an_outage_is_not_misconfigured() -> None:
    metric = Metric.model_validate({"id": "m", "source": "prom", "query": "up", "success": "> 0"})
    poll = classify(metric, Reading(error="connection refused"), path="metrics[0]")
    assert not poll.misconfigured
    mv = judge_metric(metric, [poll], window_passed=False)
    assert mv.verdict == Verdict.running


SCORE_CASES = [
    # (outcomes, pass, marginal, verdict)
    (["successful"] * 20, 95, 75, "successful"),
    (["successful"] * 19 + ["failed"], 95, 75, "successful"),
    (["successful"] * 17 + ["failed"] * 3, 95, 75, "inconclusive"),
    (["successful"] * 5 + ["failed"] * 5, 95, 75, "failed"),
    (["successful", "inconclusive", "inconclusive"], 95, 75, "inconclusive"),
    ([], 95, 75, "inconclusive"),
]


@pytest.mark.parametrize(("outcomes", "pass_score", "marginal", "expected"), SCORE_CASES)
def test_the_canary_score(
    outcomes: list[str], pass_score: float, marginal: float, expected: str
) -> None:
    assert wave_score(outcomes, pass_score=pass_score, marginal_score=marginal)[0] == expected


def test_with_a_score_the_compared_metrics_decide_together() -> None:
    good = [judge_metric(compared(id=f"m{i}"), polls(S), window_passed=True) for i in range(19)]
    bad = judge_metric(compared(id="bad"), polls(F), window_passed=True)
    alone = judge_wave([*good, bad], window_passed=True)
    assert alone.verdict == Verdict.failed  # one by one, the regression fails the wave
    scored = judge_wave([*good, bad], window_passed=True, score=Score.model_validate({}))
    assert scored.verdict == Verdict.successful
    assert scored.score_reason.startswith("score 95 (19 passed, 1 failed")
    running = judge_wave([*good, bad], window_passed=False, score=Score.model_validate({}))
    assert running.verdict == Verdict.running


def test_a_score_with_marginal_above_pass_is_refused() -> None:
    with pytest.raises(ValueError, match="marginal"):
        Score.model_validate({"pass": 70, "marginal": 80})


def test_waiting_for_samples_says_how_long() -> None:
    metric = Metric.model_validate(
        {"id": "m", "source": "prom", "query": "q", "success": "> 0", "min_samples": 20}
    )
    mv = judge_metric(metric, polls(S, S), window_passed=True)
    assert mv.reason == "2 of 20 valid samples so far; needs ~18m more at one per 1m"


@pytest.mark.parametrize(
    ("template", "seen", "age", "expected"),
    [
        ("sum(increase(x[{age}]))", 120.0, 3, "; needs ~18 more minutes at 40 req/min"),
        ("sum(increase(x[{age}]))", 0.0, 3, "; no traffic yet, so no estimate"),
        ("sum(increase(x[{window}]))", 40.0, 3, " (40 req/min; a rate 21x higher is needed)"),
    ],
)
def test_waiting_for_traffic_says_how_long_at_the_current_rate(
    template: str, seen: float, age: int, expected: str
) -> None:
    eta = traffic_eta(template, seen, 840, timedelta(minutes=age), timedelta(minutes=1))
    assert eta == expected


def test_a_dry_run_that_would_have_paused_says_when_and_on_what() -> None:
    metric = Metric.model_validate(
        {"id": "auth", "source": "prom", "query": "q", "failure": "> 0.05", "dry_run": True}
    )
    taken = [Poll(S, 0.01, "", at=T0), Poll(F, 0.09, "0.09 breaks > 0.05", at=T0.replace(minute=5))]
    mv = judge_metric(metric, taken, window_passed=False)
    assert dry_run_findings([mv]) == [mv]
    assert dry_run_line(mv) == "dry-run: would have paused at 14:05 (failed)"
    report = dry_run_report(mv, wave_label="wave 1 (canary)")
    assert report.startswith(
        "🧪 dry-run: auth would have failed and paused wave 1 (canary) at 14:05"
    )
    assert "last values 0.01, 0.09" in report
    # Not counted: the wave is judged without it.
    assert judge_wave([mv], window_passed=True).verdict == Verdict.successful
