"""The judge (DESIGN §4): a metric's verdict from its polls, and a wave's verdict from its metrics.

Pure functions of their arguments, so a table of cases pins them down (tests/test_judge.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from commands.analysis.measure import Phase, Poll
from commands.policy import Metric


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

    @property
    def deciding(self) -> list[MetricVerdict]:
        """The counted metrics whose verdict is the wave's (the worst ones)."""
        return [m for m in self.metrics if m.counted and m.verdict == self.verdict]

    @property
    def reason(self) -> str:
        if not any(m.counted for m in self.metrics):
            return "no metric is judged in this wave: the observation window alone decides"
        return "; ".join(f"{m.metric.id}: {m.reason}" for m in self.deciding)


def trailing_errors(polls: Sequence[Poll]) -> int:
    """Errors in a row at the end of the polls (a valid poll resets the run)."""
    count = 0
    for poll in reversed(polls):
        if poll.phase != Phase.error:
            break
        count += 1
    return count


def judge_metric(metric: Metric, polls: Sequence[Poll], *, window_passed: bool) -> MetricVerdict:
    """One metric's verdict from its polls (oldest first), in DESIGN §4's order.

    Limits are "more than": failure_limit 0 means the first failure fails the metric. Errors are
    not samples. Zero valid samples is never a pass.
    """
    failures = [p for p in polls if p.phase == Phase.failed]
    inconclusives = [p for p in polls if p.phase == Phase.inconclusive]
    valid = [p for p in polls if p.phase != Phase.error]
    errors = trailing_errors(polls)
    values = tuple(p.value for p in polls if p.value is not None)
    last_detail = polls[-1].detail if polls else ""

    def verdict(v: Verdict, reason: str) -> MetricVerdict:
        return MetricVerdict(
            metric,
            v,
            reason,
            valid=len(valid),
            failures=len(failures),
            inconclusives=len(inconclusives),
            consecutive_errors=errors,
            values=values,
            last_detail=last_detail,
        )

    if len(failures) > metric.failure_limit:
        why = failures[-1].detail or "condition broken"
        return verdict(
            Verdict.failed,
            f"{_count(len(failures), 'failed poll')} (limit {metric.failure_limit}): {why}",
        )
    if errors > metric.consecutive_error_limit:
        why = polls[-1].detail or "provider error"
        return verdict(
            Verdict.error,
            f"metrics unavailable: {_count(errors, 'error')} in a row "
            f"(limit {metric.consecutive_error_limit}): {why}",
        )
    if len(inconclusives) > metric.inconclusive_limit:
        why = inconclusives[-1].detail or "no clear answer"
        return verdict(
            Verdict.inconclusive,
            f"{_count(len(inconclusives), 'inconclusive poll')} "
            f"(limit {metric.inconclusive_limit}): {why}",
        )
    enough = len(valid) >= max(metric.min_samples, 1)
    if window_passed and enough:
        return verdict(Verdict.successful, f"{_count(len(valid), 'valid sample')}, all within")
    if not enough:
        return verdict(
            Verdict.running, f"{len(valid)} of {max(metric.min_samples, 1)} valid samples so far"
        )
    return verdict(Verdict.running, f"{_count(len(valid), 'valid sample')}; window not over")


def judge_wave(metrics: Sequence[MetricVerdict], *, window_passed: bool) -> WaveVerdict:
    """The worst counted metric's verdict. With no counted metric the window alone decides."""
    counted = [m for m in metrics if m.counted]
    if not counted:
        return WaveVerdict(Verdict.successful if window_passed else Verdict.running, list(metrics))
    worst = max(counted, key=lambda m: m.verdict.rank).verdict
    return WaveVerdict(worst, list(metrics))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
