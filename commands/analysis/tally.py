"""A running tally of one metric's polls in one wave: everything the judge reads of them
(DESIGN §4), folded in one poll at a time, so judging a wave costs the same however many polls
it holds. `storage/tallies.py` keeps one per rollout, wave and metric beside the raw polls;
`judge.judge_metric(polls)` is `judge_tally(tally_of(polls))`, so both paths judge alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from commands.analysis.measure import Phase, Poll
from commands.policy import Metric

# The latest values a verdict carries: the status line's trend shows 12, a dry-run report 5.
VALUES_KEPT = 12
# The times of a wave's first failed (and inconclusive) polls: the one past a metric's limit is
# when its verdict was decided. A limit this high or higher is judged from the raw polls.
TIMES_KEPT = 32


@dataclass(frozen=True)
class Tally:
    polls: int = 0
    # Polls that are not errors (errors are not samples).
    valid: int = 0
    failures: int = 0
    inconclusives: int = 0
    # Errors in a row at the end (a valid poll resets the run).
    trailing_errors: int = 0
    last: Poll | None = None
    # The newest poll that is not an error: a comparison's latest result.
    last_judged: Poll | None = None
    last_failure_detail: str = ""
    last_inconclusive_detail: str = ""
    failure_at: tuple[datetime | None, ...] = ()
    inconclusive_at: tuple[datetime | None, ...] = ()
    values: tuple[float, ...] = ()
    # The latest volume read beside a budget.
    volume: float | None = None

    def add(self, poll: Poll) -> Tally:
        """This tally with one more poll, the newest."""
        error = poll.phase == Phase.error
        failed = poll.phase == Phase.failed
        inconclusive = poll.phase == Phase.inconclusive
        values = self.values
        if poll.value is not None and not math.isnan(poll.value):
            values = (*values[-(VALUES_KEPT - 1) :], poll.value)
        return replace(
            self,
            polls=self.polls + 1,
            valid=self.valid + (not error),
            failures=self.failures + failed,
            inconclusives=self.inconclusives + inconclusive,
            trailing_errors=self.trailing_errors + 1 if error else 0,
            last=poll,
            last_judged=self.last_judged if error else poll,
            last_failure_detail=poll.detail if failed else self.last_failure_detail,
            last_inconclusive_detail=(
                poll.detail if inconclusive else self.last_inconclusive_detail
            ),
            failure_at=_kept(self.failure_at, poll) if failed else self.failure_at,
            inconclusive_at=(
                _kept(self.inconclusive_at, poll) if inconclusive else self.inconclusive_at
            ),
            values=values,
            volume=poll.volume if poll.volume is not None else self.volume,
        )

    @property
    def misconfigured(self) -> bool:
        return self.last is not None and self.last.misconfigured


def _kept(times: tuple[datetime | None, ...], poll: Poll) -> tuple[datetime | None, ...]:
    return times if len(times) >= TIMES_KEPT else (*times, poll.at)


def tally_of(polls: Iterable[Poll], start: Tally | None = None) -> Tally:
    """The tally of `polls` (oldest first), folded onto `start`."""
    tally = start or Tally()
    for poll in polls:
        tally = tally.add(poll)
    return tally


def covers(metric: Metric) -> bool:
    """Whether a tally holds all the judge needs of this metric (its limits are below
    TIMES_KEPT); otherwise the metric is judged from its raw polls."""
    return metric.failure_limit < TIMES_KEPT and metric.inconclusive_limit < TIMES_KEPT
