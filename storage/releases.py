"""Release queries."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Release, ReleaseState


class DuplicateRelease(Exception):
    pass


def get_release(version: str, *, session: Session) -> Release | None:
    return session.exec(select(Release).where(Release.version == version)).first()


def create_release(version: str, *, actor: str, at: datetime, session: Session) -> Release:
    """Insert a candidate; a version already registered raises DuplicateRelease."""
    release = Release(version=version, created_by=actor, created_at=at)
    try:
        with session.begin_nested():
            session.add(release)
            session.flush()
    except sa.exc.IntegrityError:
        raise DuplicateRelease(version) from None
    return release


def newest_unfinished_release(*, session: Session) -> Release | None:
    """The newest release that is not complete (rolled back ones are finished too)."""
    finished = [ReleaseState.complete, ReleaseState.rolled_back]
    query = (
        select(Release)
        .where(col(Release.state).not_in(finished))
        .order_by(col(Release.created_at).desc(), col(Release.id).desc())
    )
    return session.exec(query).first()


def last_known_good(*, session: Session, excluding: int | None = None) -> Release | None:
    """The newest complete release: what a rollback returns to."""
    query = select(Release).where(Release.state == ReleaseState.complete)
    if excluding is not None:
        query = query.where(Release.id != excluding)
    query = query.order_by(col(Release.completed_at).desc(), col(Release.id).desc())
    return session.exec(query).first()


def unfinished_releases(*, session: Session) -> list[Release]:
    finished = [ReleaseState.complete, ReleaseState.rolled_back]
    query = select(Release).where(col(Release.state).not_in(finished)).order_by(col(Release.id))
    return list(session.exec(query))
