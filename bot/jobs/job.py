"""A scheduled job: a name, a coroutine of the runtime and a trigger; only the leader runs it.

Leader-only work runs fenced (bot/leader.py): each of its commits checks, in the same
transaction, that this process still holds the lease epoch it was elected with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.leader import fenced
from bot.runtime import Runtime
from storage.lease import Fence

Run = Callable[[Runtime], Awaitable[None]]


@dataclass(frozen=True)
class Job:
    id: str
    run: Run
    trigger: BaseTrigger
    # A loop runs from the scheduler's start until its shutdown and asks, at every turn,
    # whether this process leads (`leader_turn`); other jobs are guarded by `leader_only`.
    loop: bool = False


def every(interval: timedelta) -> IntervalTrigger:
    return IntervalTrigger(seconds=interval.total_seconds(), timezone="UTC")


def at_start() -> DateTrigger:
    """Once, when the scheduler starts (for a loop)."""
    return DateTrigger(timezone="UTC")


def fence_of(runtime: Runtime) -> Fence | None:
    """The fencing token of this process's leader-only writes; None when it is alone."""
    return None if runtime.leadership is None else runtime.leadership.fence()


def leader_only(run: Run) -> Run:
    """A scheduled job that does nothing on replicas that do not lead, and whose writes are
    fenced: a leader frozen past its lease that wakes up mid-job commits nothing."""

    async def guarded(runtime: Runtime) -> None:
        if runtime.leads():
            with fenced(fence_of(runtime)):
                await run(runtime)

    guarded.__name__ = getattr(run, "__name__", "job")
    guarded.__doc__ = run.__doc__
    return guarded
