"""What a running wavegate holds: settings, database, policy, clock, ports; the unit of work."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.leader import Leadership
from bot.settings import Settings
from bot.sources.http import SourceHttp
from bot.telemetry import observe_command, observe_reply
from bot.work import WorkLoop
from commands.analysis.checks import PollMemory
from commands.core import Clock, Context, Reply, Request, system_clock
from commands.policy import Policy
from commands.policy_file import load_policy
from commands.ports import Ports
from commands.router import Routed, route, run
from storage.db import make_engine, session_scope

# How often the poll job looks for due polls (real seconds); each metric keeps its own interval.
POLL_EVERY = timedelta(seconds=5)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    policy: Policy
    clock: Clock = system_clock
    # What commands may use (actuator, metric sources, incident chat), wired once: bot/wiring.py.
    ports: Ports = field(default_factory=Ports)
    # The metric sources' one HTTP session and concurrency limit (bot/sources/http.py).
    source_http: SourceHttp = field(default_factory=SourceHttp)
    # Set by the HTTP app's election (bot/leader.py); None when the process is alone.
    leadership: Leadership | None = None
    poll_every: timedelta = POLL_EVERY
    poll_memory: PollMemory = field(default_factory=PollMemory)
    # Where units of work run (bot/work.py): the work loop's thread under `wavegate serve`, the
    # caller's loop when it is not started (the console, tests driving jobs by hand).
    work: WorkLoop = field(default_factory=WorkLoop)
    # One poll's write transaction at a time (bot/jobs/waves.py); used on the work loop only.
    poll_writes: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Set whenever a unit of work may have queued Slack posts, so the outbox worker wakes at once.
    # It waits on the work loop: set it with `wake_outbox()`, which is safe from any thread.
    outbox_ready: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = system_clock) -> Runtime:
        return cls(
            settings=settings,
            engine=make_engine(settings.database_url),
            policy=load_policy(settings.wavegate_policy),
            clock=clock,
        )

    def leads(self) -> bool:
        """Whether this process should do the leader's work. Without a Leadership (the console,
        a test driving jobs by hand) a process is alone, so it leads."""
        return self.leadership is None or self.leadership.leading

    @contextlib.contextmanager
    def unit(self) -> Iterator[Context]:
        """One unit of work — a command, a button, a form, an event, a job step or an API call:
        one database session, committed when the block ends, rolled back on an error. The
        posts it queued are delivered as soon as it ends."""
        with session_scope(self.engine) as session:
            yield self.context(session)
        self.wake_outbox()

    def wake_outbox(self) -> None:
        """Wake the outbox worker (on the work loop) from whichever thread this runs on."""
        self.work.call_soon(self.outbox_ready.set)

    def context(self, session: Session) -> Context:
        """What a unit of work on `session` hands to the rules."""
        return Context(session=session, policy=self.policy, clock=self.clock, ports=self.ports)

    async def run_command(self, command: Request | Routed) -> Reply:
        """Run a command (routed already, or routed here) as one unit of work."""
        routed = command if isinstance(command, Routed) else route(command)
        with self.unit() as ctx:
            try:
                reply = await run(routed, ctx)
            except BaseException:
                observe_command(routed.name, "exception")
                raise
        observe_reply(routed, reply)
        return reply
