"""One leader among the replicas: it runs the scheduled jobs and delivers the Slack outbox.

Every replica tries to take the `scheduler` lease (storage/lease.py) at start and renews it every
few seconds; whoever holds it leads. A leader that dies stops renewing, its lease expires, and
another replica's next renewal takes over. A leader that cannot reach the database stops
leading on its own a margin before its lease can expire, so two never lead at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commands.core import Clock
from storage.db import session_scope
from storage.lease import acquire_lease, lease_holder, release_lease

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
LEASE_TTL = timedelta(seconds=15)
RENEW_EVERY = timedelta(seconds=5)


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Leadership:
    """Whether this process leads, kept true only while its lease is fresh."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        name: str = LEASE_NAME,
        holder: str | None = None,
        ttl: timedelta | None = None,
        renew_every: timedelta | None = None,
        on_elected: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.name = name
        self.holder = holder or default_holder()
        # Read at construction, not at import, so a test (or a deployer) can shorten them.
        self.ttl = ttl or LEASE_TTL
        self.renew_every = renew_every or min(RENEW_EVERY, self.ttl / 3)
        self.on_elected = on_elected
        self._valid_until: datetime | None = None

    @property
    def leading(self) -> bool:
        """True while this process holds a lease that a renewal confirmed recently enough.

        It stops a renewal interval before the lease could expire, so a leader cut off from the
        database steps down before anyone else can take over.
        """
        return self._valid_until is not None and self.clock() < self._valid_until

    def _acquire(self, now: datetime) -> bool:
        with session_scope(self.engine) as session:
            return acquire_lease(
                self.name, holder=self.holder, ttl=self.ttl, now=now, session=session
            )

    async def renew(self) -> bool:
        """Take or renew the lease once; returns whether this process leads now."""
        was = self.leading
        now = self.clock()
        try:
            won = await asyncio.to_thread(self._acquire, now)
        except sa.exc.SQLAlchemyError as exc:
            # Keep what we have until it runs out: a blip must not hand leadership around.
            log.warning("cannot renew the %s lease: %s", self.name, type(exc).__name__)
            return self.leading
        self._valid_until = now + self.ttl - self.renew_every if won else None
        if won and not was:
            log.info("%s leads: it runs the scheduled jobs and delivers Slack posts", self.holder)
            if self.on_elected is not None:
                self.on_elected()
        elif was and not won:
            log.warning("%s lost the %s lease; another replica leads", self.holder, self.name)
        return won

    async def run(self) -> None:
        """Renew every `renew_every` until cancelled (the first try is the caller's)."""
        while True:
            await asyncio.sleep(self.renew_every.total_seconds())
            await self.renew()

    async def resign(self) -> None:
        """Hand the lease back at a clean shutdown, so the next leader needs no expiry wait."""
        if self._valid_until is None:
            return
        self._valid_until = None
        now = self.clock()

        def give_up() -> None:
            with session_scope(self.engine) as session:
                release_lease(self.name, holder=self.holder, now=now, session=session)

        with contextlib.suppress(sa.exc.SQLAlchemyError):
            await asyncio.to_thread(give_up)

    def current_holder(self) -> str | None:
        with session_scope(self.engine) as session:
            return lease_holder(self.name, now=self.clock(), session=session)


@contextlib.asynccontextmanager
async def campaign(leadership: Leadership) -> AsyncIterator[Leadership]:
    """Take part in the election for as long as the block runs (the app's background work):
    try once at once, renew in the background, resign at the end."""
    await leadership.renew()
    task = asyncio.create_task(leadership.run())
    try:
        yield leadership
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await leadership.resign()
