"""A scheduled job: a name, a coroutine of the runtime and a trigger; only the leader runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.runtime import Runtime

Run = Callable[[Runtime], Awaitable[None]]


@dataclass(frozen=True)
class Job:
    id: str
    run: Run
    trigger: BaseTrigger


def every(interval: timedelta) -> IntervalTrigger:
    return IntervalTrigger(seconds=interval.total_seconds(), timezone="UTC")


def leader_only(run: Run) -> Run:
    """A scheduled job that does nothing on replicas that do not lead."""

    async def guarded(runtime: Runtime) -> None:
        if runtime.leads():
            await run(runtime)

    guarded.__name__ = getattr(run, "__name__", "job")
    guarded.__doc__ = run.__doc__
    return guarded
