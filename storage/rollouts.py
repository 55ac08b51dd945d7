"""Rollout queries, and the one way to change a rollout: a compare-and-set on its `version`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.db import core_connection
from storage.models import Release, Rollout, RolloutState

ACTIVE = (RolloutState.running, RolloutState.paused)


class DuplicateRollout(Exception):
    """The release already has a rollout (one per release)."""


def create_rollout(rollout: Rollout, *, session: Session) -> Rollout:
    try:
        with session.begin_nested():
            session.add(rollout)
            session.flush()
    except sa.exc.IntegrityError:
        raise DuplicateRollout(rollout.release_id) from None
    return rollout


def get_rollout(rollout_id: int, *, session: Session) -> Rollout | None:
    return session.get(Rollout, rollout_id)


def rollout_of(release: Release, *, session: Session) -> Rollout | None:
    return session.exec(select(Rollout).where(Rollout.release_id == release.id)).first()


# The hot reads (`/wave status`, every poll cycle) are built once: constructing a select and its
# cache key costs more than running it on a small table. Their active-state test is two bound
# equalities rather than IN, which SQLAlchemy would re-expand on every execution.
_IS_ACTIVE = sa.or_(*(col(Rollout.state) == state for state in ACTIVE))
_ACTIVE_ROLLOUTS = (
    select(Rollout, Release)
    .join(Release, col(Release.id) == col(Rollout.release_id))
    .where(_IS_ACTIVE)
    .order_by(col(Rollout.started_at), col(Rollout.id))
)
_FIRST_ACTIVE_ROLLOUTS = _ACTIVE_ROLLOUTS.limit(sa.bindparam("limit"))
_COUNT_ACTIVE = sa.select(sa.func.count()).select_from(Rollout).where(_IS_ACTIVE)
_LIVE = (*ACTIVE, RolloutState.starting)
_LIVE_COUNTS = (
    sa.select(col(Rollout.state), sa.func.count())
    .where(sa.or_(*(col(Rollout.state) == state for state in _LIVE)))
    .group_by(col(Rollout.state))
)
_RUNNING_IDS = (
    sa.select(Rollout.__table__.c.id)  # type: ignore[attr-defined]
    .where(col(Rollout.state) == RolloutState.running)
    .order_by(col(Rollout.id))
)


def active_rollouts(*, session: Session, limit: int | None = None) -> list[tuple[Rollout, Release]]:
    """Running and paused rollouts with their releases, oldest first (the first `limit`)."""
    if limit is None:
        return [(r, rel) for r, rel in session.exec(_ACTIVE_ROLLOUTS)]
    return [(r, rel) for r, rel in session.exec(_FIRST_ACTIVE_ROLLOUTS, params={"limit": limit})]


def count_active_rollouts(*, session: Session) -> int:
    """A plain Core count on the session's connection: no ORM compile or entity machinery."""
    return int(core_connection(session).execute(_COUNT_ACTIVE).scalar_one())


def live_rollout_counts(*, session: Session) -> tuple[int, int]:
    """(active, starting) rollouts in one Core select: with none, `/wave status` is answered
    from this alone."""
    counts = {state: count for state, count in core_connection(session).execute(_LIVE_COUNTS)}
    active = sum(int(counts.get(state, 0)) for state in ACTIVE)
    return active, int(counts.get(RolloutState.starting, 0))


def running_rollout_ids(*, session: Session) -> list[int]:
    return [int(i) for i in core_connection(session).execute(_RUNNING_IDS).scalars()]


def rollouts_by_id(ids: Sequence[int], *, session: Session) -> dict[int, Rollout]:
    """Many rollouts in one query, their releases loaded beside them (and held in the
    session's `info` for its life, so `session.get(Release, …)` finds them without a query:
    the identity map holds its objects weakly)."""
    query = (
        select(Rollout, Release)
        .join(Release, col(Release.id) == col(Rollout.release_id))
        .where(col(Rollout.id).in_(list(ids)))
    )
    rows = list(session.exec(query))
    session.info.setdefault("held", []).extend(rows)
    return {r.id: r for r, _ in rows if r.id is not None}


def list_rollouts(
    *, session: Session, state: str | None = None, limit: int = 500
) -> list[tuple[Rollout, Release]]:
    """Every rollout, newest first, optionally of one state."""
    query = select(Rollout, Release).join(Release, col(Release.id) == col(Rollout.release_id))
    if state is not None:
        query = query.where(Rollout.state == state)
    query = query.order_by(col(Rollout.started_at).desc(), col(Rollout.id).desc()).limit(limit)
    return [(r, rel) for r, rel in session.exec(query)]


def change_rollout(rollout: Rollout, *, session: Session, **values: Any) -> bool:
    """Apply `values` only if nobody changed the rollout since it was read (its `version` is
    still the one we saw), bumping the version. False: someone else won; `rollout` is reloaded.

    On PostgreSQL a concurrent UPDATE waits for the winner's commit and then matches no row; on
    SQLite the write lock serialises writers the same way.
    """
    assert rollout.id is not None
    seen = rollout.version
    statement = (
        sa.update(Rollout)
        .where(col(Rollout.id) == rollout.id, col(Rollout.version) == seen)
        .values(version=seen + 1, **values)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(statement)
    session.refresh(rollout)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def set_verdict(rollout: Rollout, verdict: str, *, session: Session) -> None:
    """The latest verdict is an observation, not a state change: it does not bump the version,
    so a poll never makes a person's Promote look stale."""
    if rollout.verdict == verdict:
        return
    assert rollout.id is not None
    session.execute(
        sa.update(Rollout)
        .where(col(Rollout.id) == rollout.id)
        .values(verdict=verdict)
        .execution_options(synchronize_session=False)
    )
    session.refresh(rollout)


def mark_ready(rollout: Rollout, *, at: datetime, session: Session) -> bool:
    """Note once per wave that it is ready (its approvers were offered Promote). False when it
    was already noted. Like the verdict, this does not bump the version."""
    assert rollout.id is not None
    result = session.execute(
        sa.update(Rollout)
        .where(
            col(Rollout.id) == rollout.id,
            col(Rollout.wave_index) == rollout.wave_index,
            col(Rollout.ready_at).is_(None),
        )
        .values(ready_at=at)
        .execution_options(synchronize_session=False)
    )
    session.refresh(rollout)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- claims (DESIGN §10)

# What a settled or released claim leaves behind: no pending action.
CLEARED: dict[str, Any] = {
    "pending_action": None,
    "pending_actor": None,
    "pending_reason": None,
    "pending_since": None,
    "pending_key": None,
    "pending_owner": None,
    "pending_state": None,
    "pending_wave_index": None,
    "pending_target": None,
    "pending_body": None,
    "pending_note": None,
}


def claim_rollout(rollout: Rollout, *, session: Session, **pending: Any) -> bool:
    """Record a pending action, only if nobody changed the rollout since it was read and no
    action is pending on it; bumps the version. False: refused (`rollout` is reloaded)."""
    assert rollout.id is not None
    seen = rollout.version
    statement = (
        sa.update(Rollout)
        .where(
            col(Rollout.id) == rollout.id,
            col(Rollout.version) == seen,
            col(Rollout.pending_action).is_(None),
        )
        .values(version=seen + 1, **pending)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(statement)
    session.refresh(rollout)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _of_claim(rollout: Rollout, key: str, owner: str | None) -> list[Any]:
    conditions = [col(Rollout.id) == rollout.id, col(Rollout.pending_key) == key]
    if owner is not None:
        conditions.append(col(Rollout.pending_owner) == owner)
    return conditions


def settle_claim(
    rollout: Rollout,
    *,
    key: str,
    owner: str | None,
    session: Session,
    released: bool = False,
    **values: Any,
) -> bool:
    """Clear the claim `key` (still held by `owner`, when given) and apply `values`. False: the
    claim was settled or taken over by someone else.

    The claim's version bump stands for the change it settles; a `released` claim (the deploy
    system said no) gives it back, since the rollout is exactly where it was before the claim
    (nothing else changes a rollout while an action is pending on it)."""
    assert rollout.id is not None
    version = col(Rollout.version) - 1 if released else col(Rollout.version)
    statement = (
        sa.update(Rollout)
        .where(*_of_claim(rollout, key, owner))
        .values(version=version, **{**CLEARED, **values})
        .execution_options(synchronize_session=False)
    )
    result = session.execute(statement)
    session.refresh(rollout)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def drop_start_claim(rollout: Rollout, *, key: str, owner: str | None, session: Session) -> bool:
    """A start the deploy system did not confirm: the rollout row goes, the release stays a
    candidate. False: settled or taken over meanwhile."""
    assert rollout.id is not None
    statement = (
        sa.delete(Rollout)
        .where(*_of_claim(rollout, key, owner), col(Rollout.state) == RolloutState.starting)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(statement)
    if result.rowcount == 1:  # type: ignore[attr-defined]
        session.expunge(rollout)
        return True
    session.refresh(rollout)
    return False


def take_over_claim(rollout: Rollout, *, key: str, owner: str, session: Session) -> bool:
    """A recovering leader makes a claim its own, so its first sender (if it still lives)
    leaves settling to it. Not a change of state: the version stays."""
    assert rollout.id is not None
    statement = (
        sa.update(Rollout)
        .where(col(Rollout.id) == rollout.id, col(Rollout.pending_key) == key)
        .values(pending_owner=owner)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(statement)
    session.refresh(rollout)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def set_pending_note(rollout: Rollout, note: str, *, key: str, session: Session) -> bool:
    """Rewrite the note of the claim with `key`; False when it is not pending any more."""
    assert rollout.id is not None
    result = session.execute(
        sa.update(Rollout)
        .where(col(Rollout.id) == rollout.id, col(Rollout.pending_key) == key)
        .values(pending_note=note)
        .execution_options(synchronize_session=False)
    )
    session.refresh(rollout)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def set_queued_pause(rollout: Rollout, queued: str | None, *, session: Session) -> bool:
    """Queue (or clear) an incident's pause behind the pending action; False when no action
    is pending any more (the caller pauses at once instead)."""
    assert rollout.id is not None
    conditions = [col(Rollout.id) == rollout.id]
    if queued is not None:
        conditions.append(col(Rollout.pending_action).is_not(None))
    result = session.execute(
        sa.update(Rollout)
        .where(*conditions)
        .values(queued_pause=queued)
        .execution_options(synchronize_session=False)
    )
    session.refresh(rollout)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def pending_rollouts(*, session: Session) -> list[tuple[Rollout, Release]]:
    """Rollouts with an action claimed and not settled, oldest claim first."""
    query = (
        select(Rollout, Release)
        .join(Release, col(Release.id) == col(Rollout.release_id))
        .where(col(Rollout.pending_action).is_not(None))
        .order_by(col(Rollout.pending_since), col(Rollout.id))
    )
    return [(r, rel) for r, rel in session.exec(query)]


def starting_rollouts(*, session: Session) -> list[tuple[Rollout, Release]]:
    """Starts claimed and not yet confirmed by the deploy system."""
    query = (
        select(Rollout, Release)
        .join(Release, col(Release.id) == col(Rollout.release_id))
        .where(Rollout.state == RolloutState.starting)
        .order_by(col(Rollout.id))
    )
    return [(r, rel) for r, rel in session.exec(query)]


def pending_or_active_rollouts(*, session: Session) -> list[tuple[Rollout, Release]]:
    """Running, paused and starting rollouts, oldest first (an incident pauses or queues)."""
    query = (
        select(Rollout, Release)
        .join(Release, col(Release.id) == col(Rollout.release_id))
        .where(col(Rollout.state).in_((*ACTIVE, RolloutState.starting)))
        .order_by(col(Rollout.id))
    )
    return [(r, rel) for r, rel in session.exec(query)]
