"""Table tests of the baseline judge: Mann-Whitney verdicts, too few samples, NaN, the score."""

from __future__ import annotations

import math
import random

import pytest

from commands.analysis.baseline import (
    BaselineResult,
    Direction,
    compare_to_baseline,
    score_comparisons,
)

CONFIDENCE = 0.98


def latencies(seed: int, n: int = 40, *, scale: float = 1.0) -> list[float]:
    """Deterministic p95-like latencies around 200 ms (a seeded Random, so every run agrees)."""
    rng = random.Random(seed)
    return [scale * rng.gauss(200.0, 10.0) for _ in range(n)]


def judge(
    canary: list[float],
    baseline: list[float],
    direction: Direction = "increase",
    *,
    tolerance: float = 0.25,
    min_samples: int = 10,
) -> BaselineResult:
    return compare_to_baseline(
        canary,
        baseline,
        metric="p95",
        baseline_label="2026.11.20-1",
        direction=direction,
        tolerance=tolerance,
        min_samples=min_samples,
    )


BASE = latencies(1)
SAME_RELEASE = latencies(6)  # another draw from the same distribution
UP_30 = latencies(3, scale=1.3)
DOWN_30 = latencies(4, scale=0.7)
UP_10 = latencies(5, scale=1.1)


@pytest.mark.parametrize(
    ("canary", "direction", "verdict", "classification"),
    [
        pytest.param(UP_30, "increase", "failed", "High", id="up-30%-increase-bad"),
        pytest.param(UP_30, "decrease", "successful", "Pass", id="up-30%-decrease-bad"),
        pytest.param(UP_30, "either", "failed", "High", id="up-30%-either"),
        pytest.param(DOWN_30, "decrease", "failed", "Low", id="down-30%-decrease-bad"),
        pytest.param(DOWN_30, "increase", "successful", "Pass", id="down-30%-increase-bad"),
        pytest.param(DOWN_30, "either", "failed", "Low", id="down-30%-either"),
        pytest.param(UP_10, "increase", "successful", "Pass", id="up-10%-within-tolerance"),
        pytest.param(UP_10, "either", "successful", "Pass", id="up-10%-either-within"),
        pytest.param(SAME_RELEASE, "either", "successful", "Pass", id="unchanged-release"),
    ],
)
def test_shifted_distributions_are_judged_by_direction(
    canary: list[float], direction: Direction, verdict: str, classification: str
) -> None:
    result = judge(canary, BASE, direction)

    assert (result.verdict, result.classification) == (verdict, classification)
    assert (result.canary_count, result.baseline_count) == (40, 40)
    assert result.p_value is not None
    assert 0 <= result.p_value <= 1
    assert result.change is not None
    if verdict == "failed":
        assert result.p_value < 1 - CONFIDENCE
        assert abs(result.change) > 0.25
        assert (result.change > 0) == (classification == "High")


@pytest.mark.parametrize(
    ("canary", "direction", "moved"),
    [
        pytest.param(UP_30, "decrease", "higher", id="up-when-decrease-is-bad"),
        pytest.param(DOWN_30, "increase", "lower", id="down-when-increase-is-bad"),
    ],
)
def test_a_move_the_harmless_way_passes_and_says_which_way_fails(
    canary: list[float], direction: Direction, moved: str
) -> None:
    result = judge(canary, BASE, direction)

    # The one-sided test looks only the bad way, so it sees nothing here.
    assert result.p_value is not None
    assert result.p_value > 0.5
    assert result.reason == "direction allowed"
    assert f" % {moved} than baseline" in result.explain()
    assert result.explain().endswith(
        f"; only {'a decrease' if moved == 'higher' else 'an increase'} fails"
    )


def test_a_significant_shift_inside_the_tolerance_passes_and_says_so() -> None:
    result = judge(UP_10, BASE, "increase")

    assert result.p_value is not None
    assert result.p_value < 1 - CONFIDENCE  # the test sees it …
    assert result.change is not None
    assert 0 < result.change < 0.25  # … but it is smaller than the tolerance
    assert result.reason == "within tolerance"
    assert "within the 25 % tolerance" in result.explain()


def test_a_tighter_tolerance_fails_the_same_shift() -> None:
    assert judge(UP_10, BASE, "increase", tolerance=0.05).verdict == "failed"


def test_the_failure_explains_itself_in_plain_words() -> None:
    result = judge(UP_30, BASE[:38], "increase")
    assert result.change is not None
    percent = round(result.change * 100)

    text = result.explain()

    assert text.startswith(f"canary p95 is {percent} % higher than baseline 2026.11.20-1 (p ")
    assert text.endswith("40 vs 38 samples)")


def test_identical_samples_pass_without_a_test() -> None:
    result = judge(list(BASE), list(reversed(BASE)), "either")

    assert (result.verdict, result.reason, result.change) == ("successful", "identical", 0.0)
    assert result.p_value is None
    assert "matches baseline 2026.11.20-1" in result.explain()


def test_one_value_throughout_passes_instead_of_crashing() -> None:
    result = judge([5.0] * 12, [5.0] * 10, "either")

    assert (result.verdict, result.reason) == ("successful", "all ties")
    assert result.explain() == (
        "canary p95 equals baseline 2026.11.20-1: every sample is 5 (12 vs 10 samples)"
    )


@pytest.mark.parametrize(
    ("canary", "baseline", "verdict"),
    [
        # Error counts: mostly zeros on both sides, heavy ties, no real change.
        pytest.param([0.0] * 18 + [1.0] * 2, [0.0] * 17 + [1.0] * 3, "successful", id="zeros"),
        # Baseline median 0, canary median 3: no ratio, the test alone decides (as Kayenta).
        pytest.param([3.0] * 15 + [4.0] * 5, [0.0] * 15 + [1.0] * 5, "failed", id="from-zero"),
        # Two values, mostly tied, canary clearly higher.
        pytest.param([10.0] * 5 + [20.0] * 15, [10.0] * 15 + [20.0] * 5, "failed", id="two-val"),
    ],
)
def test_ties_give_a_finite_p_value(
    canary: list[float], baseline: list[float], verdict: str
) -> None:
    result = judge(canary, baseline, "increase")

    assert result.verdict == verdict
    assert result.p_value is not None
    assert math.isfinite(result.p_value)
    if verdict == "failed":
        assert result.p_value < 1 - CONFIDENCE


def test_a_rise_from_a_zero_baseline_is_explained_without_a_ratio() -> None:
    result = judge([3.0] * 15 + [4.0] * 5, [0.0] * 15 + [1.0] * 5, "increase")

    assert (result.change, result.ratio) == (None, None)
    assert "canary p95 has median 3 against 0 for baseline 2026.11.20-1" in result.explain()


@pytest.mark.parametrize(
    ("n_canary", "n_baseline", "canary_needed", "baseline_needed"),
    [
        pytest.param(4, 2, 6, 8, id="both-short"),
        pytest.param(12, 9, 0, 1, id="baseline-short"),
        pytest.param(0, 30, 10, 0, id="no-canary"),
    ],
)
def test_too_few_samples_is_inconclusive_and_says_how_many_more(
    n_canary: int, n_baseline: int, canary_needed: int, baseline_needed: int
) -> None:
    result = judge(UP_30[:n_canary], BASE[:n_baseline], "increase")

    assert (result.verdict, result.classification) == ("inconclusive", "Nodata")
    assert (result.canary_count, result.baseline_count) == (n_canary, n_baseline)
    assert (result.canary_needed, result.baseline_needed) == (canary_needed, baseline_needed)
    assert result.p_value is None
    assert "not enough samples" in result.explain()


def test_the_inconclusive_text_names_each_side_that_is_short() -> None:
    text = judge(UP_30[:4], BASE[:9], "increase").explain()

    assert text == (
        "canary p95: not enough samples to compare with baseline 2026.11.20-1 "
        "(4 vs 9 samples; needs 6 more canary samples and 1 more baseline sample)"
    )


def test_min_samples_is_a_parameter() -> None:
    result = judge(UP_30[:5], BASE[:5], "increase", min_samples=5)

    assert result.classification != "Nodata"
    assert (result.canary_count, result.baseline_count) == (5, 5)


def test_nan_and_inf_samples_are_dropped_before_judging() -> None:
    dirty = [*UP_30[:20], math.nan, math.inf, *UP_30[20:], -math.inf]

    result = judge(dirty, [*BASE, math.nan], "increase")

    assert result.verdict == judge(UP_30, BASE, "increase").verdict == "failed"
    assert (result.canary_count, result.baseline_count, result.dropped) == (40, 40, 4)
    assert "40 vs 40 samples, 4 NaN/Inf dropped)" in result.explain()


def test_nan_that_leaves_too_few_samples_counts_only_the_real_ones() -> None:
    result = judge([math.nan] * 8 + UP_30[:8], BASE, "increase")

    assert (result.verdict, result.canary_count, result.canary_needed) == ("inconclusive", 8, 2)


def test_all_nan_is_inconclusive() -> None:
    result = judge([math.nan] * 20, [math.nan] * 20, "either")

    assert (result.verdict, result.canary_count, result.baseline_count) == ("inconclusive", 0, 0)
    assert (result.canary_needed, result.baseline_needed, result.dropped) == (10, 10, 40)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"direction": "up"}, id="direction"),
        pytest.param({"tolerance": -0.1}, id="tolerance"),
        pytest.param({"confidence": 1.0}, id="confidence"),
        pytest.param({"min_samples": 0}, id="min-samples"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        compare_to_baseline(BASE, BASE, metric="p95", baseline_label="b", **kwargs)  # type: ignore[arg-type]


# --- the Kayenta-style score -------------------------------------------------------------------

PASS = judge(SAME_RELEASE, BASE, "either")
FAIL = judge(UP_30, BASE, "increase")
WAIT = judge(UP_30[:3], BASE, "increase")


def named(name: str, canary: list[float]) -> BaselineResult:
    return compare_to_baseline(canary, BASE, metric=name, baseline_label="2026.11.20-1")


@pytest.mark.parametrize(
    ("results", "score", "verdict"),
    [
        pytest.param([PASS] * 20, 100.0, "successful", id="all-pass"),
        pytest.param([PASS] * 19 + [FAIL], 95.0, "successful", id="95-is-a-pass"),
        pytest.param([PASS] * 18 + [FAIL] * 2, 90.0, "inconclusive", id="90-marginal"),
        pytest.param([PASS] * 3 + [FAIL], 75.0, "inconclusive", id="75-still-marginal"),
        pytest.param([PASS] * 2 + [FAIL], 66.67, "failed", id="67-fails"),
        pytest.param([FAIL] * 3, 0.0, "failed", id="all-fail"),
        # Inconclusive metrics are left out of the score, as Kayenta leaves out Nodata.
        pytest.param([PASS] * 19 + [FAIL] + [WAIT] * 5, 95.0, "successful", id="nodata-left-out"),
        # Half or more undecided: not enough evidence either way.
        pytest.param([PASS] * 2 + [WAIT] * 2, 100.0, "inconclusive", id="half-undecided"),
        pytest.param([WAIT] * 3, None, "inconclusive", id="all-undecided"),
        pytest.param([], None, "inconclusive", id="nothing-compared"),
    ],
)
def test_score_thresholds(results: list[BaselineResult], score: float | None, verdict: str) -> None:
    summary = score_comparisons(results)

    assert (summary.score, summary.verdict) == (score, verdict)
    assert summary.passed + summary.failed + summary.inconclusive == len(results)


def test_score_thresholds_are_parameters() -> None:
    results = [PASS] * 18 + [FAIL] * 2  # 90

    assert score_comparisons(results, pass_score=90).verdict == "successful"
    assert score_comparisons(results, pass_score=99, marginal_score=91).verdict == "failed"


def test_a_critical_metric_that_fails_fails_the_score() -> None:
    results = [named(f"m{i}", SAME_RELEASE) for i in range(19)] + [named("p99", UP_30)]

    assert score_comparisons(results).verdict == "successful"
    summary = score_comparisons(results, critical={"p99"})
    assert (summary.verdict, summary.score) == ("failed", 0.0)
    assert "critical p99 failed" in summary.reason


def test_the_score_explains_each_failed_metric() -> None:
    summary = score_comparisons([PASS, PASS, FAIL])

    lines = summary.explain().splitlines()
    assert lines[0] == "score 66.67 (2 passed, 1 failed, 0 inconclusive): below 75"
    assert lines[1:] == [f"• {FAIL.explain()}"]


def test_score_refuses_thresholds_out_of_order() -> None:
    with pytest.raises(ValueError, match="marginal_score"):
        score_comparisons([PASS], pass_score=70, marginal_score=80)


def test_an_unchanged_release_reads_as_unchanged() -> None:
    text = judge(SAME_RELEASE, BASE, "either").explain()

    assert text.startswith("canary p95 is under 1 % higher than baseline 2026.11.20-1 (p = ")
    assert text.endswith(", not significant at 98 % confidence")
