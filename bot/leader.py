"""One leader among the replicas: it runs the scheduled jobs and delivers the Slack outbox.

Every replica tries to take the `scheduler` lease (storage/lease.py) at start; the leader renews
it every `renew_every`, a follower tries again the moment the holder's lease runs out (the
database tells it how long that is), so a dead leader is replaced within the lease's time to
live, 1.5 renewals. The holder's name is stable across restarts (`replica_id`), so a restarted
single replica leads again at once instead of waiting for its own old lease.

Expiry lives on the database's clock; this process only judges, on its own monotonic clock, how
long a renewal it saw succeed stays good, and stops a margin before the database's expiry. The
lease's epoch is the fencing token: `fenced(fence)` marks a block of leader-only work, and every
commit inside it checks in the same transaction that the lease still has that holder and epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction

from storage.db import session_scope
from storage.lease import Claim, Fence, acquire_lease, check_fence, lease_holder, release_lease

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
# A follower takes over at the latest `LEASE_TTL` after the leader's last renewal: 1.5 renewal
# intervals, inside the 2 intervals promised.
RENEW_EVERY = timedelta(seconds=5)
LEASE_TTL = timedelta(seconds=7.5)


def replica_id(configured: str | None = None, *, port: int | None = None) -> str:
    """The stable name this replica campaigns under: WAVEGATE_REPLICA_ID, or hostname:port.

    Stable, so a restarted replica recognises its own lease; distinct per replica, because two
    processes campaigning under one name would take the lease from each other at each start.
    """
    if configured:
        return configured
    return f"{socket.gethostname()}:{port}" if port else socket.gethostname()


class Leadership:
    """Whether this process leads, kept true only while its lease is fresh."""

    def __init__(
        self,
        engine: Engine,
        *,
        name: str = LEASE_NAME,
        holder: str | None = None,
        ttl: timedelta | None = None,
        renew_every: timedelta | None = None,
        on_elected: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder or replica_id()
        # Read at construction, not at import, so a test (or a deployer) can shorten them.
        self.renew_every = renew_every or RENEW_EVERY
        self.ttl = ttl or max(LEASE_TTL, self.renew_every * 1.5)
        if self.ttl <= self.renew_every:
            raise ValueError("the lease must outlive a renewal interval")
        self.on_elected = on_elected
        self.monotonic = monotonic
        # The epoch this process won; kept after losing, so its stale writes are fenced off.
        self.epoch: int | None = None
        self._valid_until: float | None = None
        self._next_try = 0.0

    @property
    def margin(self) -> float:
        """Seconds before the database's expiry that this process stops acting on its lease:
        covers the time between a `leading` check and the act it allows, and leaves half the
        lease's spare time (beyond one renewal interval) for a slow renewal."""
        spare = (self.ttl - self.renew_every).total_seconds() / 2
        return min(1.0, self.renew_every.total_seconds(), spare)

    @property
    def leading(self) -> bool:
        """True while this process holds a lease that a renewal confirmed recently enough.

        Judged on the monotonic clock from the moment the renewal was *sent*, which is before
        the database stamped its expiry, so this turns false before anyone else can take over.
        """
        return self._valid_until is not None and self.monotonic() < self._valid_until

    def fence(self) -> Fence:
        """The token leader-only writes carry; a process that never led carries epoch 0."""
        return Fence(self.name, self.holder, self.epoch or 0)

    def _acquire(self) -> Claim:
        with session_scope(self.engine) as session:
            return acquire_lease(
                self.name,
                holder=self.holder,
                ttl=self.ttl,
                known_epoch=self.epoch,
                session=session,
            )

    async def renew(self) -> bool:
        """Take or renew the lease once; returns whether this process leads now."""
        was = self.leading
        sent = self.monotonic()
        try:
            claim = await asyncio.to_thread(self._acquire)
        except sa.exc.SQLAlchemyError as exc:
            # Keep what we have until it runs out: a blip must not hand leadership around.
            log.warning("cannot renew the %s lease: %s", self.name, type(exc).__name__)
            self._next_try = self.monotonic() + self.renew_every.total_seconds() / 2
            return self.leading
        won = claim.epoch is not None
        if won:
            changed = claim.epoch != self.epoch
            self.epoch = claim.epoch
            self._valid_until = sent + self.ttl.total_seconds() - self.margin
            self._next_try = sent + self.renew_every.total_seconds()
            if changed or not was:
                log.info(
                    "%s leads (epoch %s): it runs the scheduled jobs and delivers Slack posts",
                    self.holder,
                    self.epoch,
                )
                if self.on_elected is not None:
                    self.on_elected()
        else:
            self._valid_until = None
            # Try again right after the holder's lease runs out, or at the next interval.
            wait = min(self.renew_every.total_seconds(), claim.remaining + 0.05)
            self._next_try = self.monotonic() + wait
            if was:
                log.warning("%s lost the %s lease; another replica leads", self.holder, self.name)
        return won

    async def run(self) -> None:
        """Renew until cancelled (the first try is the caller's)."""
        while True:
            await asyncio.sleep(max(0.01, self._next_try - self.monotonic()))
            await self.renew()

    async def resign(self) -> None:
        """Hand the lease back at a clean shutdown, so the next leader needs no expiry wait."""
        if self._valid_until is None or self.epoch is None:
            return
        self._valid_until = None
        epoch = self.epoch

        def give_up() -> None:
            with session_scope(self.engine) as session:
                release_lease(self.name, holder=self.holder, epoch=epoch, session=session)

        with contextlib.suppress(sa.exc.SQLAlchemyError):
            await asyncio.to_thread(give_up)

    def current_holder(self) -> str | None:
        with session_scope(self.engine) as session:
            return lease_holder(self.name, session=session)


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


# ---------------------------------------------------------------- fenced writes

# The fence of the leader-only work running in this context (a job, a poll); None elsewhere.
FENCE: contextvars.ContextVar[Fence | None] = contextvars.ContextVar("wavegate_fence", default=None)


@contextlib.contextmanager
def fenced(fence: Fence | None) -> Iterator[None]:
    """Every database commit in this block (and in the tasks and threads it starts) that wrote
    something first checks `fence` in the same transaction; a stale one raises Fenced and rolls
    the whole write back. None: a process alone (the console), nothing to check."""
    token = FENCE.set(fence)
    try:
        yield
    finally:
        FENCE.reset(token)


_WROTE = "wavegate_wrote"


@event.listens_for(OrmSession, "after_flush")
def _note_flush(session: OrmSession, flush_context: UOWTransaction) -> None:
    session.info[_WROTE] = True


@event.listens_for(OrmSession, "do_orm_execute")
def _note_statement(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WROTE] = True


@event.listens_for(OrmSession, "before_commit")
def _check_fence_before_commit(session: OrmSession) -> None:
    fence = FENCE.get()
    if fence is None:
        return
    session.flush()  # the ORM's pending writes count too
    if session.info.pop(_WROTE, False):
        check_fence(fence, session=session)  # type: ignore[arg-type]


@event.listens_for(OrmSession, "after_commit")
@event.listens_for(OrmSession, "after_rollback")
def _forget_writes(session: OrmSession) -> None:
    session.info.pop(_WROTE, None)
