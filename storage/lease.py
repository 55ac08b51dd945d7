"""Leases: one holder of a named role at a time (the scheduler's leader), across processes.

Taking or renewing is one conditional UPDATE — the row changes only where this holder already
has it or it has expired — so two replicas racing see exactly one win on SQLite and PostgreSQL
alike. A missing row is INSERTed; of two replicas inserting at once, the primary key lets one in
and the other gets an IntegrityError, which is a lost race, not a failure.

Expiry uses the callers' clocks: replicas need clocks within a fraction of the lease's time to
live of each other (NTP gives milliseconds; leases last seconds).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlmodel import Session, col, update

from storage.models import Lease


def acquire_lease(
    name: str, *, holder: str, ttl: timedelta, now: datetime, session: Session
) -> bool:
    """Take or renew the lease until `now + ttl`; False while someone else holds it.

    Commits: a lease is only worth anything once other processes can see it.
    """
    expires = now + ttl
    statement = (
        update(Lease)
        .where(col(Lease.name) == name)
        .where(sa.or_(col(Lease.holder) == holder, col(Lease.expires_at) < now))
        .values(holder=holder, expires_at=expires)
    )
    result: CursorResult[object] = session.execute(statement)  # type: ignore[assignment]
    if result.rowcount == 1:
        session.commit()
        return True
    session.rollback()
    if session.get(Lease, name) is not None:
        return False  # held by someone else, and not expired
    try:
        session.add(Lease(name=name, holder=holder, expires_at=expires))
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()  # another replica inserted it first
        return False
    return True


def release_lease(name: str, *, holder: str, now: datetime, session: Session) -> bool:
    """Give the lease up at once (a clean shutdown), so another replica need not wait for it to
    expire. Only the holder can release it."""
    statement = (
        update(Lease)
        .where(col(Lease.name) == name, col(Lease.holder) == holder)
        .values(expires_at=now)
    )
    result: CursorResult[object] = session.execute(statement)  # type: ignore[assignment]
    session.commit()
    return result.rowcount == 1


def lease_holder(name: str, *, now: datetime, session: Session) -> str | None:
    """Who holds the lease now (None when nobody does or it expired)."""
    lease = session.get(Lease, name, populate_existing=True)
    if lease is None or lease.expires_at <= now:
        return None
    return lease.holder
