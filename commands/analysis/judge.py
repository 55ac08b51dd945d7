"""The judge (DESIGN §4): a metric's verdict from its polls, and a wave's verdict from its metrics.

Pure functions of their arguments, so a table of cases pins them down (tests/test_judge.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from commands.analysis.measure import Phase, Poll
from commands.analysis.score import wave_score
from commands.analysis.tally import Tally, tally_of
from commands.policy import Metric, Score
from commands.values import format_duration


class Verdict(StrEnum):
    successful = "successful"
    running = "running"
    inconclusive = "inconclusive"
    error = "error"
    failed = "failed"

    @property
    def rank(self) -> int:
        """Worse is higher: successful < running < inconclusive < error < failed."""
        return list(Verdict).index(self)


@dataclass(frozen=True)
class MetricVerdict:
    metric: Metric
    verdict: Verdict
    # Why, in plain words: "2 failed polls (limit 1): 3100 breaks > 2500".
    reason: str
    valid: int
    failures: int
    inconclusives: int
    consecutive_errors: int
    values: tuple[float, ...]
    last_detail: str = ""
    # The source refused the query itself: fix the policy field named in `reason`.
    misconfigured: bool = False
    # When the poll that decided a failed / error / inconclusive verdict was taken.
    decided_at: datetime | None = None
    # The latest volume read beside a budget (units a day), for the cost forecast.
    volume: float | None = None

    @property
    def latest(self) -> float | None:
        return self.values[-1] if self.values else None

    @property
    def counted(self) -> bool:
        """Dry-run metrics are shown, never counted."""
        return not self.metric.dry_run


@dataclass(frozen=True)
class WaveVerdict:
    verdict: Verdict
    metrics: list[MetricVerdict]
    # With a wave `score`: the summary over the compared metrics, which then decide together.
    score: Verdict | None = None
    score_reason: str = ""
    scored: tuple[str, ...] = field(default_factory=tuple)

    @property
    def deciding(self) -> list[MetricVerdict]:
        """The counted metrics whose verdict is the wave's (the worst ones)."""
        return [
            m
            for m in self.metrics
            if m.counted and m.verdict == self.verdict and m.metric.id not in self.scored
        ]

    @property
    def misconfigured(self) -> bool:
        return any(m.misconfigured for m in self.deciding)

    @property
    def reason(self) -> str:
        if not any(m.counted for m in self.metrics):
            return "no metric is judged in this wave: the observation window alone decides"
        parts = [f"{m.metric.id}: {m.reason}" for m in self.deciding]
        if self.score is not None and self.score == self.verdict:
            parts.append(f"canary score: {self.score_reason}")
        return "; ".join(parts)


def judge_metric(metric: Metric, polls: Sequence[Poll], *, window_passed: bool) -> MetricVerdict:
    """One metric's verdict from its polls (oldest first), in DESIGN §4's order."""
    return judge_tally(metric, tally_of(polls), window_passed=window_passed)


def judge_tally(metric: Metric, tally: Tally, *, window_passed: bool) -> MetricVerdict:
    """One metric's verdict from the tally of its polls (commands/analysis/tally.py).

    Limits are "more than": failure_limit 0 means the first failure fails the metric. Errors are
    not samples. Zero valid samples is never a pass.
    """
    last = tally.last
    errors = tally.trailing_errors

    def verdict(v: Verdict, reason: str, at: datetime | None = None) -> MetricVerdict:
        return MetricVerdict(
            metric,
            v,
            reason,
            valid=tally.valid,
            failures=tally.failures,
            inconclusives=tally.inconclusives,
            consecutive_errors=errors,
            values=tally.values,
            last_detail=last.detail if last is not None else "",
            misconfigured=tally.misconfigured,
            decided_at=at,
            volume=tally.volume,
        )

    if last is not None and last.misconfigured:
        # No retry mends a query the source refuses: say which field to fix, at once.
        return verdict(Verdict.error, last.detail, last.at)
    if metric.compare is not None:
        return _judge_comparison(metric, tally, verdict, window_passed=window_passed)

    if tally.failures > metric.failure_limit:
        why = tally.last_failure_detail or "condition broken"
        return verdict(
            Verdict.failed,
            f"{_count(tally.failures, 'failed poll')} (limit {metric.failure_limit}): {why}",
            tally.failure_at[metric.failure_limit],
        )
    if errors > metric.consecutive_error_limit:
        assert last is not None
        why = last.detail or "provider error"
        return verdict(
            Verdict.error,
            f"metrics unavailable: {_count(errors, 'error')} in a row "
            f"(limit {metric.consecutive_error_limit}): {why}",
            last.at,
        )
    if tally.inconclusives > metric.inconclusive_limit:
        why = tally.last_inconclusive_detail or "no clear answer"
        return verdict(
            Verdict.inconclusive,
            f"{_count(tally.inconclusives, 'inconclusive poll')} "
            f"(limit {metric.inconclusive_limit}): {why}",
            tally.inconclusive_at[metric.inconclusive_limit],
        )
    valid = tally.valid
    enough = valid >= max(metric.min_samples, 1)
    if window_passed and enough:
        return verdict(Verdict.successful, f"{_count(valid, 'valid sample')}, all within")
    if not enough:
        missing = max(metric.min_samples, 1) - valid
        return verdict(
            Verdict.running,
            f"{valid} of {max(metric.min_samples, 1)} valid samples so far; needs "
            f"~{format_duration(metric.interval * missing)} more at one per "
            f"{format_duration(metric.interval)}",
        )
    return verdict(Verdict.running, f"{_count(valid, 'valid sample')}; window not over")


def _judge_comparison(
    metric: Metric, tally: Tally, verdict: _Make, *, window_passed: bool
) -> MetricVerdict:
    """A comparison re-reads the whole wave every poll, so its latest result is the evidence:
    a regression fails (past `failure_limit`), too few samples waits while the window runs and
    is inconclusive after it, a pass passes once the window is over."""
    errors = tally.trailing_errors
    if errors > metric.consecutive_error_limit:
        assert tally.last is not None
        why = tally.last.detail or "provider error"
        return verdict(
            Verdict.error,
            f"metrics unavailable: {_count(errors, 'error')} in a row "
            f"(limit {metric.consecutive_error_limit}): {why}",
            tally.last.at,
        )
    if tally.failures > metric.failure_limit:
        return verdict(
            Verdict.failed, tally.last_failure_detail, tally.failure_at[metric.failure_limit]
        )
    last = tally.last_judged
    if last is None:
        return verdict(Verdict.running, "no comparison yet")
    if last.phase == Phase.successful:
        if window_passed:
            return verdict(Verdict.successful, last.detail)
        return verdict(Verdict.running, f"passes so far: {last.detail}")
    if window_passed:
        return verdict(Verdict.inconclusive, last.detail, last.at)
    return verdict(Verdict.running, last.detail)


class _Make(Protocol):
    def __call__(self, v: Verdict, reason: str, at: datetime | None = None) -> MetricVerdict: ...


def judge_wave(
    metrics: Sequence[MetricVerdict], *, window_passed: bool, score: Score | None = None
) -> WaveVerdict:
    """The worst counted metric's verdict. With no counted metric the window alone decides.

    With a `score`, the compared metrics decide together through their Kayenta-style score
    (commands/analysis/score.py) instead of one by one.
    """
    counted = [m for m in metrics if m.counted]
    if not counted:
        return WaveVerdict(Verdict.successful if window_passed else Verdict.running, list(metrics))
    compared = [m for m in counted if m.metric.compare is not None and not m.misconfigured]
    if score is None or not compared:
        worst = max(counted, key=lambda m: m.verdict.rank).verdict
        return WaveVerdict(worst, list(metrics))
    outcome, why = wave_score(
        [_outcome(m) for m in compared], pass_score=score.pass_, marginal_score=score.marginal
    )
    summary = Verdict(outcome)
    if summary != Verdict.failed and not window_passed:
        summary = Verdict.running
    others = [m.verdict for m in counted if m not in compared]
    worst = max([summary, *others], key=lambda v: v.rank)
    return WaveVerdict(worst, list(metrics), summary, why, tuple(m.metric.id for m in compared))


def _outcome(mv: MetricVerdict) -> str:
    """A compared metric's latest outcome for the score (errors count as undecided)."""
    if mv.verdict in (Verdict.failed, Verdict.successful):
        return mv.verdict.value
    if mv.verdict == Verdict.running and mv.reason.startswith("passes so far"):
        return "successful"
    return "inconclusive"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
