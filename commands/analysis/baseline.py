"""Baseline comparison: canary samples against a known-good release's, judged as Kayenta does."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from scipy.stats import mannwhitneyu

Direction = Literal["increase", "decrease", "either"]
# Kayenta's metric labels: High / Low are regressions in the bad direction, Pass is anything
# else, Nodata is "too few samples to run the test".
Classification = Literal["High", "Low", "Pass", "Nodata"]
# wavegate's verdict words (commands.judge.Verdict); plain strings so this module stands alone.
Outcome = Literal["successful", "inconclusive", "failed"]

DIRECTIONS: tuple[Direction, ...] = ("increase", "decrease", "either")
# Kayenta's NetflixACAJudge builds its Mann-Whitney classifier with these two.
DEFAULT_TOLERANCE = 0.25
DEFAULT_CONFIDENCE = 0.98
# Per side. Below about 4 samples a side no rank test can reach p < 0.02 at all (with 3 vs 3 the
# smallest one-sided p is 1/20); 10 a side also keeps scipy on its normal approximation, which is
# what a ties correction needs, and is a few minutes of 30 s query_range steps.
DEFAULT_MIN_SAMPLES = 10
# Kayenta's canary config defaults for the summary score.
DEFAULT_PASS_SCORE = 95.0
DEFAULT_MARGINAL_SCORE = 75.0

_ALTERNATIVE: dict[Direction, str] = {
    # scipy's alternative is about the first sample (the canary) against the second.
    "increase": "greater",
    "decrease": "less",
    "either": "two-sided",
}


@dataclass(frozen=True)
class BaselineResult:
    """One metric's canary-versus-baseline comparison; `explain()` says it in words."""

    metric: str
    baseline_label: str
    verdict: Outcome
    classification: Classification
    direction: Direction
    tolerance: float
    confidence: float
    canary_count: int
    baseline_count: int
    # NaN and ±Inf samples removed before judging (both sides together).
    dropped: int
    canary_needed: int = 0
    baseline_needed: int = 0
    p_value: float | None = None
    canary_median: float | None = None
    baseline_median: float | None = None
    # (canary median - baseline median) / |baseline median|: +0.31 is "31 % higher". None when
    # the baseline median is 0 and the canary's is not, where a ratio means nothing.
    change: float | None = None
    # Why the verdict, as a short tag: "regression", "identical", "all ties", "not significant",
    # "within tolerance", "direction allowed", "too few samples".
    reason: str = ""

    @property
    def ratio(self) -> float | None:
        """Canary median over baseline median (1.31 for 31 % higher)."""
        return None if self.change is None else 1.0 + self.change

    def explain(self) -> str:
        """Plain words (not yet escaped for Slack): what moved, by how much, on what evidence."""
        name = f"canary {self.metric}"
        against = f"baseline {self.baseline_label}"
        counts = f"{self.canary_count} vs {self.baseline_count} samples"
        if self.dropped:
            counts += f", {self.dropped} NaN/Inf dropped"
        if self.classification == "Nodata":
            needs = " and ".join(
                f"{n} more {side} sample{'s' if n != 1 else ''}"
                for n, side in ((self.canary_needed, "canary"), (self.baseline_needed, "baseline"))
                if n
            )
            return f"{name}: not enough samples to compare with {against} ({counts}; needs {needs})"
        if self.reason == "identical":
            return f"{name} matches {against} sample for sample ({counts})"
        if self.reason == "all ties":
            return (
                f"{name} equals {against}: every sample is {_number(self.canary_median)} ({counts})"
            )
        evidence = f"({_p(self.p_value)}, {counts})"
        text = f"{name} {self._moved()} {against} {evidence}"
        if self.reason == "not significant":
            text += f", not significant at {_percent(self.confidence)} % confidence"
        elif self.reason == "within tolerance":
            text += f", within the {_percent(self.tolerance)} % tolerance"
        elif self.reason == "direction allowed":
            text += (
                f"; only {'an increase' if self.direction == 'increase' else 'a decrease'} fails"
            )
        return text

    def _moved(self) -> str:
        if self.change is None:
            return (
                f"has median {_number(self.canary_median)} against "
                f"{_number(self.baseline_median)} for"
            )
        if self.change == 0:
            return "has the same median as"
        word = "higher" if self.change > 0 else "lower"
        size = "under 1" if abs(self.change) < 0.01 else _percent(abs(self.change))
        return f"is {size} % {word} than"


def compare_to_baseline(
    canary: Iterable[float],
    baseline: Iterable[float],
    *,
    metric: str,
    baseline_label: str,
    direction: Direction = "increase",
    tolerance: float = DEFAULT_TOLERANCE,
    confidence: float = DEFAULT_CONFIDENCE,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> BaselineResult:
    """Judge canary samples against baseline samples with scipy's Mann-Whitney U test.

    Follows Kayenta's MannWhitneyClassifier: identical samples, or one value throughout, pass
    without a test; otherwise the canary is High (Low) when the rank test is significant in the
    bad direction and the effect is bigger than the tolerance. Kayenta measures that effect
    against its Hodges-Lehmann interval; here it is the relative change of the medians, so
    `tolerance=0.25` reads "up to 25 % worse than the baseline is fine". When the baseline median
    is 0 the effect cannot be a ratio and, as in Kayenta, the test alone decides. `direction`
    says which change is bad; High/Low become "failed", Pass "successful", too few samples
    "inconclusive" with how many more each side needs.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be 0 or more, not {tolerance}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, not {min_samples}")

    raw_canary, raw_baseline = list(canary), list(baseline)
    cs = [float(v) for v in raw_canary if math.isfinite(v)]
    bs = [float(v) for v in raw_baseline if math.isfinite(v)]
    result = BaselineResult(
        metric=metric,
        baseline_label=baseline_label,
        verdict="inconclusive",
        classification="Nodata",
        direction=direction,
        tolerance=tolerance,
        confidence=confidence,
        canary_count=len(cs),
        baseline_count=len(bs),
        dropped=len(raw_canary) - len(cs) + len(raw_baseline) - len(bs),
    )
    if len(cs) < min_samples or len(bs) < min_samples:
        return replace(
            result,
            canary_needed=max(0, min_samples - len(cs)),
            baseline_needed=max(0, min_samples - len(bs)),
            reason="too few samples",
        )

    canary_median, baseline_median = statistics.median(cs), statistics.median(bs)
    result = replace(result, canary_median=canary_median, baseline_median=baseline_median)
    passed = replace(result, verdict="successful", classification="Pass")
    if sorted(cs) == sorted(bs):
        return replace(passed, change=0.0, reason="identical")
    if len(set(cs) | set(bs)) == 1:
        # One value throughout: the rank variance is 0 and scipy would answer NaN with a warning.
        return replace(passed, change=0.0, reason="all ties")

    with warnings.catch_warnings():
        # Heavy ties make scipy warn about its normal approximation; the tie-corrected p stands.
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(mannwhitneyu(cs, bs, alternative=_ALTERNATIVE[direction]).pvalue)
    change = _relative_change(canary_median, baseline_median)
    passed = replace(passed, p_value=p_value, change=change)

    significant = math.isfinite(p_value) and p_value < 1 - confidence
    went_up = canary_median > baseline_median if change is None else change > tolerance
    went_down = canary_median < baseline_median if change is None else change < -tolerance
    if significant and went_up and direction != "decrease":
        return replace(passed, verdict="failed", classification="High", reason="regression")
    if significant and went_down and direction != "increase":
        return replace(passed, verdict="failed", classification="Low", reason="regression")
    # A move the harmless way is named as such, whatever its size: "not significant" would be
    # a strange thing to say of a 30 % rise whose one-sided p for a fall is 1.00.
    harmless = (direction == "increase" and canary_median < baseline_median) or (
        direction == "decrease" and canary_median > baseline_median
    )
    if harmless:
        return replace(passed, reason="direction allowed")
    return replace(passed, reason="within tolerance" if significant else "not significant")


@dataclass(frozen=True)
class CanaryScore:
    """A Kayenta-style summary over several compared metrics."""

    verdict: Outcome
    # 0-100, the share of decided metrics that passed; None when no metric was decided.
    score: float | None
    passed: int
    failed: int
    inconclusive: int
    pass_score: float
    marginal_score: float
    reason: str
    results: tuple[BaselineResult, ...]

    def explain(self) -> str:
        """One line for the thread, then one per failed or undecided metric."""
        lines = [self.reason]
        lines += [f"• {r.explain()}" for r in self.results if r.verdict != "successful"]
        return "\n".join(lines)


def score_comparisons(
    results: Sequence[BaselineResult],
    *,
    pass_score: float = DEFAULT_PASS_SCORE,
    marginal_score: float = DEFAULT_MARGINAL_SCORE,
    critical: Collection[str] = (),
) -> CanaryScore:
    """Kayenta's summary score (WeightedSumScorer with one group, ThresholdScoreClassifier).

    Score = 100 * passed / (passed + failed): inconclusive metrics (Kayenta's Nodata) are left
    out. At or above `pass_score` → successful, at or above `marginal_score` → inconclusive
    (Kayenta's "marginal", a person decides), below → failed. As in Kayenta, a failed metric
    named in `critical` fails the whole comparison with score 0. Kayenta also fails when half or
    more of the metrics have no data; wavegate calls that inconclusive instead, because too few
    samples is a reason to wait or ask (DESIGN §4), not evidence of a regression.
    """
    if not 0 <= marginal_score <= pass_score <= 100:
        raise ValueError(
            f"need 0 <= marginal_score <= pass_score <= 100, got {marginal_score} and {pass_score}"
        )
    passed = sum(r.verdict == "successful" for r in results)
    failed = sum(r.verdict == "failed" for r in results)
    undecided = sum(r.verdict == "inconclusive" for r in results)
    decided = passed + failed
    score = round(100.0 * passed / decided, 2) if decided else None

    def summary(verdict: Outcome, reason: str, value: float | None = score) -> CanaryScore:
        return CanaryScore(
            verdict=verdict,
            score=value,
            passed=passed,
            failed=failed,
            inconclusive=undecided,
            pass_score=pass_score,
            marginal_score=marginal_score,
            reason=reason,
            results=tuple(results),
        )

    tally = f"{passed} passed, {failed} failed, {undecided} inconclusive"
    critical_failures = [
        r.metric for r in results if r.verdict == "failed" and r.metric in critical
    ]
    if critical_failures:
        return summary(
            "failed", f"score 0: critical {', '.join(critical_failures)} failed ({tally})", 0.0
        )
    if not results:
        return summary("inconclusive", "no metrics compared")
    if score is None or 2 * undecided >= len(results):
        return summary("inconclusive", f"half or more of the metrics undecided ({tally})")
    shown = f"score {_number(score)} ({tally})"
    if score >= pass_score:
        return summary("successful", f"{shown}: at least {_number(pass_score)} passes")
    if score >= marginal_score:
        return summary(
            "inconclusive",
            f"{shown}: marginal, below {_number(pass_score)} but at least "
            f"{_number(marginal_score)}",
        )
    return summary("failed", f"{shown}: below {_number(marginal_score)}")


def _relative_change(canary: float, baseline: float) -> float | None:
    if baseline == 0:
        return 0.0 if canary == 0 else None
    return (canary - baseline) / abs(baseline)


def _percent(fraction: float) -> str:
    value = fraction * 100
    return f"{value:.0f}" if value >= 10 or value == round(value) else f"{value:.2g}"


def _p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "no p-value"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"
