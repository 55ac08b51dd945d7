"""The judge (DESIGN §4) as a table: one metric's verdict from its polls, and a wave's."""

from __future__ import annotations

import pytest

from commands.analysis.judge import Verdict, judge_metric, judge_wave
from commands.analysis.measure import Phase, Poll, Reading, classify
from commands.policy import Metric

S, F, N, E = Phase.successful, Phase.failed, Phase.inconclusive, Phase.error  # N: neither


def metric(**overrides: object) -> Metric:
    fields: dict[str, object] = {"id": "m", "source": "demo", "success": ">= 0.97"}
    fields.update(overrides)
    return Metric.model_validate(fields)


def polls(*phases: Phase) -> list[Poll]:
    return [Poll(p, 1.0 if p != E else None, f"poll {i}") for i, p in enumerate(phases)]


CASES = [
    # (case, metric fields, polls, window passed, verdict)
    ("nothing yet", {}, [], False, Verdict.running),
    ("zero valid samples never passes, window over", {}, [], True, Verdict.running),
    ("only errors never pass", {"consecutive_error_limit": 9}, [E, E, E], True, Verdict.running),
    ("one success after the window passes", {}, [S], True, Verdict.successful),
    ("success before the window is running", {}, [S, S], False, Verdict.running),
    ("min_samples not reached", {"min_samples": 3}, [S, S], True, Verdict.running),
    ("min_samples reached", {"min_samples": 3}, [S, S, S], True, Verdict.successful),
    ("errors do not count as samples", {"min_samples": 3}, [S, E, S, E], True, Verdict.running),
    ("first failure fails at limit 0", {}, [S, F], False, Verdict.failed),
    ("failures at the limit do not fail", {"failure_limit": 1}, [F, S], True, Verdict.successful),
    ("limit is more than", {"failure_limit": 1}, [F, S, F], False, Verdict.failed),
    ("failure wins over errors", {"consecutive_error_limit": 0}, [F, E], False, Verdict.failed),
    ("errors over the limit", {"consecutive_error_limit": 2}, [S, E, E, E], False, Verdict.error),
    ("errors at the limit", {"consecutive_error_limit": 2}, [S, E, E], True, Verdict.successful),
    ("a valid poll resets errors", {"consecutive_error_limit": 2}, [E, E, S, E], True,
     Verdict.successful),
    ("error wins over inconclusive", {"consecutive_error_limit": 0}, [N, E], False, Verdict.error),
    ("inconclusive at limit 0", {}, [S, N], True, Verdict.inconclusive),
    ("inconclusive within limit", {"inconclusive_limit": 1}, [S, N], True, Verdict.successful),
    ("inconclusive counts as a valid sample", {"inconclusive_limit": 1, "min_samples": 2}, [S, N],
     True, Verdict.successful),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "phases", "passed", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_metric_verdict_table(
    fields: dict[str, object], phases: list[Phase], passed: bool, expected: Verdict
) -> None:
    result = judge_metric(metric(**fields), polls(*phases), window_passed=passed)
    assert result.verdict == expected, result.reason


def test_classify_failure_wins_over_success_and_neither_is_inconclusive() -> None:
    both = metric(success=">= 0.5", failure="> 0.9")
    assert classify(both, Reading(0.95)).phase == Phase.failed
    assert classify(both, Reading(0.7)).phase == Phase.successful
    assert classify(both, Reading(0.3)).phase == Phase.inconclusive


def test_failed_reason_quotes_the_breaking_value() -> None:
    latency = metric(success=None, failure="> 2500")
    poll = classify(latency, Reading(3100.0, detail="query: p95"))
    result = judge_metric(latency, [poll], window_passed=False)
    assert result.verdict == Verdict.failed
    assert "3100 breaks > 2500" in result.reason
    assert "query: p95" in result.reason


WAVE_CASES = [
    ([Verdict.successful, Verdict.successful], Verdict.successful),
    ([Verdict.successful, Verdict.running], Verdict.running),
    ([Verdict.running, Verdict.inconclusive], Verdict.inconclusive),
    ([Verdict.inconclusive, Verdict.error], Verdict.error),
    ([Verdict.error, Verdict.failed, Verdict.successful], Verdict.failed),
]


@pytest.mark.parametrize(("verdicts", "expected"), WAVE_CASES)
def test_wave_verdict_is_the_worst_metric(verdicts: list[Verdict], expected: Verdict) -> None:
    phase_for = {
        Verdict.successful: [S],
        Verdict.running: [],
        Verdict.inconclusive: [N],
        Verdict.error: [E] * 5,
        Verdict.failed: [F],
    }
    judged = [
        judge_metric(metric(id=f"m{i}"), polls(*phase_for[v]), window_passed=True)
        for i, v in enumerate(verdicts)
    ]
    assert [j.verdict for j in judged] == verdicts
    assert judge_wave(judged, window_passed=True).verdict == expected


def test_dry_run_metrics_are_shown_never_counted() -> None:
    good = judge_metric(metric(id="good"), polls(S), window_passed=True)
    shadow = judge_metric(metric(id="shadow", dry_run=True), polls(F), window_passed=True)
    wave = judge_wave([good, shadow], window_passed=True)
    assert shadow.verdict == Verdict.failed
    assert wave.verdict == Verdict.successful
    assert [m.metric.id for m in wave.metrics] == ["good", "shadow"]


def test_a_wave_of_only_dry_run_metrics_waits_for_its_window() -> None:
    shadow = judge_metric(metric(id="shadow", dry_run=True), polls(S), window_passed=False)
    assert judge_wave([shadow], window_passed=False).verdict == Verdict.running
    assert judge_wave([shadow], window_passed=True).verdict == Verdict.successful


def test_wave_reason_names_the_deciding_metrics() -> None:
    failed = judge_metric(metric(id="latency"), polls(F), window_passed=True)
    fine = judge_metric(metric(id="rate"), polls(S), window_passed=True)
    wave = judge_wave([fine, failed], window_passed=True)
    assert wave.reason.startswith("latency: 1 failed poll (limit 0)")
    assert "rate" not in wave.reason
