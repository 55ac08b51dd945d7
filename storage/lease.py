"""Leases on the database's clock, with a fencing token: one leader at a time across processes.

Taking or renewing is one conditional UPDATE whose expiry test and new expiry are computed in
SQL from the database's own clock (`db_seconds`), so a replica whose clock is off by an hour
neither steals a live lease nor keeps a dead one. `epoch` grows whenever the lease changes
hands, and `check_fence` lets a leader-only write prove, in its own transaction, that its
writer still holds the epoch it was elected with: a leader that wakes up from a freeze after
losing its lease changes nothing. A missing row is INSERTed; of two replicas inserting at once,
the primary key lets one in and the other gets an IntegrityError, a lost race.

A transaction that locks the lease row (a renewal, a fence check) is also what a frozen
process would keep holding: SIGSTOP, a VM freeze or a long GC pause between the lock and the
commit leaves it "idle in transaction" on PostgreSQL, and every other replica's take-over
UPDATE would wait on that row until the frozen process woke. So those transactions tell
PostgreSQL to end them if they sit idle longer than `ROW_LOCK_IDLE_LIMIT_MS` (the commit follows
the lock by microseconds when nothing is wrong): the frozen writer's transaction is rolled back
and its connection closed by the server, its write never lands, and the take-over goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col, update

from storage.models import Lease


class db_seconds(FunctionElement[float]):
    """The database's `now` as unix seconds (fractional), on SQLite and PostgreSQL."""

    type = sa.Float()
    inherit_cache = True


@compiles(db_seconds, "sqlite")
def _sqlite_seconds(element: db_seconds, compiler: Any, **kw: Any) -> str:
    # julianday('now') has millisecond resolution and is fixed for the whole statement.
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_seconds, "postgresql")
def _postgres_seconds(element: db_seconds, compiler: Any, **kw: Any) -> str:
    # clock_timestamp(), not now(): now() is the transaction's start, which may be old.
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


# How long a transaction holding the lease row may sit idle before PostgreSQL ends it. Far above
# the microseconds between the lock and the commit, far below the lease's time to live, so a
# frozen holder delays a take-over by at most this much.
ROW_LOCK_IDLE_LIMIT_MS = 1000
# How long a renewal (or a release) waits for the lease row's lock before giving up; a renewal
# tries again later.
ROW_LOCK_WAIT_MS = 3000


def _bound_row_lock(session: Session, *, wait: bool = False) -> None:
    """PostgreSQL only: this transaction is ended by the server if it idles while it holds the
    lease row (and, with `wait`, waits at most ROW_LOCK_WAIT_MS for that lock)."""
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: one process owns the file; its write lock ends with the process
    limits = [
        f"set_config('idle_in_transaction_session_timeout', '{ROW_LOCK_IDLE_LIMIT_MS}', true)"
    ]
    if wait:
        limits.append(f"set_config('lock_timeout', '{ROW_LOCK_WAIT_MS}', true)")
    session.execute(sa.text("SELECT " + ", ".join(limits)))


class Fenced(Exception):
    """A leader-only write by a process that no longer holds the lease epoch it acted under."""


@dataclass(frozen=True)
class Fence:
    """What a leader-only write carries: the lease, its holder and the epoch it was won with."""

    name: str
    holder: str
    epoch: int


@dataclass(frozen=True)
class Claim:
    """The outcome of one try: the epoch when this holder leads now; else how long the
    current holder's lease still runs (seconds on the database's clock)."""

    epoch: int | None
    remaining: float = 0.0


def acquire_lease(
    name: str, *, holder: str, ttl: timedelta, known_epoch: int | None, session: Session
) -> Claim:
    """Take or renew the lease for `ttl` from the database's now.

    - `holder` with `known_epoch` (it renewed before): renewed, same epoch.
    - `holder` with no `known_epoch` (a restarted replica that held it): taken back at once,
      with a new epoch, so whatever the previous process of that name did is fenced off.
    - anyone, once the lease expired on the database's clock: taken, with a new epoch.

    Commits: a lease is only worth anything once other processes can see it.
    """
    seconds = ttl.total_seconds()
    _bound_row_lock(session, wait=True)
    keep = (
        sa.and_(col(Lease.holder) == holder, col(Lease.epoch) == known_epoch)
        if known_epoch is not None
        else sa.false()
    )
    restarted = col(Lease.holder) == holder if known_epoch is None else sa.false()
    statement = (
        update(Lease)
        .where(col(Lease.name) == name)
        .where(sa.or_(keep, restarted, col(Lease.expires_at) < db_seconds()))
        .values(
            holder=holder,
            expires_at=db_seconds() + seconds,
            # The SET clauses read the row as it was: renewals keep the epoch, a change bumps it.
            epoch=sa.case((keep, col(Lease.epoch)), else_=col(Lease.epoch) + 1),
        )
        .returning(col(Lease.epoch))
    )
    won = session.execute(statement).scalar_one_or_none()
    if won is not None:
        session.commit()
        return Claim(int(won))
    remaining = session.execute(
        sa.select(col(Lease.expires_at) - db_seconds()).where(col(Lease.name) == name)
    ).scalar_one_or_none()
    session.rollback()
    if remaining is not None:
        return Claim(None, max(0.0, float(remaining)))  # held by someone else, not expired
    try:
        _bound_row_lock(session)
        session.execute(
            sa.insert(Lease).values(
                name=name, holder=holder, expires_at=db_seconds() + seconds, epoch=1
            )
        )
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()  # another replica inserted it first
        return Claim(None, seconds)
    return Claim(1)


def release_lease(name: str, *, holder: str, epoch: int, session: Session) -> bool:
    """Give the lease up at once (a clean shutdown), so another replica need not wait for it to
    expire. Only the holder, at its epoch, can release it."""
    _bound_row_lock(session, wait=True)
    statement = (
        update(Lease)
        .where(col(Lease.name) == name, col(Lease.holder) == holder, col(Lease.epoch) == epoch)
        .values(expires_at=db_seconds() - 1)
    )
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    session.commit()
    return result.rowcount == 1


def lease_holder(name: str, *, session: Session) -> str | None:
    """Who holds the lease now, on the database's clock (None when nobody does or it expired)."""
    query = sa.select(col(Lease.holder)).where(
        col(Lease.name) == name, col(Lease.expires_at) > db_seconds()
    )
    return session.execute(query).scalar_one_or_none()


def lease_epoch(name: str, *, session: Session) -> int | None:
    return session.execute(
        sa.select(col(Lease.epoch)).where(col(Lease.name) == name)
    ).scalar_one_or_none()


def check_fence(fence: Fence, *, session: Session) -> None:
    """Raise Fenced unless the lease still has `fence`'s holder and epoch.

    A no-op UPDATE rather than a SELECT: it locks the lease row until this transaction ends
    (PostgreSQL; SQLite's write lock does the same), so a take-over cannot slip in between this
    check and the commit of the write it guards. Call it last, just before the commit, so the
    row is locked for microseconds.
    """
    _bound_row_lock(session)
    statement = (
        update(Lease)
        .where(
            col(Lease.name) == fence.name,
            col(Lease.holder) == fence.holder,
            col(Lease.epoch) == fence.epoch,
        )
        .values(epoch=col(Lease.epoch))
    )
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    if result.rowcount != 1:
        raise Fenced(
            f"{fence.holder} no longer holds the {fence.name} lease at epoch {fence.epoch}"
        )
