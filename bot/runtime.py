"""What a running wavegate holds: settings, database, policy, clock and the ports commands use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.metrics import command_name, observe_command, observe_reply
from bot.settings import Settings
from commands.core import Clock, Context, Reply, Request, system_clock
from commands.policy import Policy, load_policy
from commands.router import dispatch
from storage.db import make_engine


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    policy: Policy
    clock: Clock = system_clock
    # Ports handed to commands through Context.services (actuator, chat, metric sources…).
    services: dict[str, Any] = field(default_factory=dict)
    # Set whenever a command queued Slack posts, so the outbox worker wakes at once.
    outbox_ready: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = system_clock) -> Runtime:
        return cls(
            settings=settings,
            engine=make_engine(settings.database_url),
            policy=load_policy(settings.wavegate_policy),
            clock=clock,
        )

    def context(self, session: Session) -> Context:
        return Context(
            session=session, policy=self.policy, clock=self.clock, services=self.services
        )

    async def run_command(self, request: Request) -> Reply:
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                reply = await dispatch(request, self.context(session))
            except BaseException:
                observe_command(command_name(request), "exception")
                raise
        observe_reply(request, reply)
        self.outbox_ready.set()
        return reply
