"""The Slack outbox: posts are written in the same transaction as the change they announce,
then claimed, sent and settled by the leader; a crash or a 429 leaves them here to be retried.

A post's life: queued → claimed (holder + lease epoch, one short transaction) → sent with no
transaction open → settled (sent; or failed, to retry at a time; or dead, parked for good). The
settling UPDATEs only match the claim that sent it, so a fenced leader's late answer is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlmodel import Session, col, select, update

from storage.lease import db_seconds
from storage.models import OutboxPost, SlackMessage, SlackRateLimit


def enqueue_post(
    *,
    channel: str,
    text: str,
    at: datetime,
    session: Session,
    blocks: list[dict[str, Any]] | None = None,
    message_key: str | None = None,
    thread_key: str | None = None,
) -> OutboxPost:
    """Queue a post. A keyed message that still has an unsent, unclaimed version takes the new
    content instead of queueing another: a burst of updates costs Slack one call, not one per
    change. A version already claimed (on its way to Slack) is left alone — overwriting it would
    mark the new content sent when only the old one went — and the new one queues behind it."""
    encoded = json.dumps(blocks) if blocks else None
    if message_key is not None:
        waiting = session.exec(
            select(OutboxPost.id).where(
                OutboxPost.message_key == message_key,
                col(OutboxPost.sent_at).is_(None),
                col(OutboxPost.dead_at).is_(None),
                col(OutboxPost.claimed_by).is_(None),
            )
        ).first()
        if waiting is not None:
            # Conditional, so a claim committed since the SELECT wins and we queue anew.
            result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(OutboxPost)
                .where(col(OutboxPost.id) == waiting, col(OutboxPost.claimed_by).is_(None))
                .values(text=text, blocks=encoded)
            )
            if result.rowcount == 1:
                post = session.get(OutboxPost, waiting, populate_existing=True)
                assert post is not None
                return post
    post = OutboxPost(
        channel=channel,
        text=text,
        blocks=encoded,
        message_key=message_key,
        thread_key=thread_key,
        created_at=at,
        next_attempt_at=at,
    )
    session.add(post)
    session.flush()
    return post


def pending_posts(*, session: Session, limit: int | None = None) -> list[OutboxPost]:
    """Every post neither sent nor dead, oldest first (the order they must go out in)."""
    query = (
        select(OutboxPost)
        .where(col(OutboxPost.sent_at).is_(None), col(OutboxPost.dead_at).is_(None))
        .order_by(col(OutboxPost.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def dead_posts(*, session: Session) -> list[OutboxPost]:
    query = select(OutboxPost).where(col(OutboxPost.dead_at).is_not(None))
    return list(session.exec(query.order_by(col(OutboxPost.id))))


def claim_posts(
    ids: Sequence[int], *, holder: str, epoch: int, at: datetime, session: Session
) -> int:
    """Claim unsent posts for one sender; a claim left by anyone earlier is taken over (only the
    leader claims, one batch at a time, so an old claim belongs to a dead or fenced worker)."""
    if not ids:
        return 0
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(OutboxPost)
        .where(
            col(OutboxPost.id).in_(list(ids)),
            col(OutboxPost.sent_at).is_(None),
            col(OutboxPost.dead_at).is_(None),
        )
        .values(claimed_by=holder, claim_epoch=epoch, claimed_at=at)
    )
    return int(result.rowcount)


def _settle(post_id: int, *, holder: str, epoch: int, session: Session, **values: Any) -> bool:
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(OutboxPost)
        .where(
            col(OutboxPost.id) == post_id,
            col(OutboxPost.claimed_by) == holder,
            col(OutboxPost.claim_epoch) == epoch,
            col(OutboxPost.sent_at).is_(None),
        )
        .values(claimed_by=None, claim_epoch=None, claimed_at=None, **values)
    )
    return result.rowcount == 1


def settle_sent(post_id: int, *, holder: str, epoch: int, at: datetime, session: Session) -> bool:
    return _settle(
        post_id,
        holder=holder,
        epoch=epoch,
        session=session,
        sent_at=at,
        attempts=col(OutboxPost.attempts) + 1,
        last_error=None,
    )


def settle_failed(
    post_id: int,
    *,
    holder: str,
    epoch: int,
    error: str | None,
    retry_at: datetime,
    counts: bool,
    session: Session,
) -> bool:
    """Back to the queue until `retry_at`. `counts`: whether this was a real try (a 429 or a
    send held back by a rate-limit gate is not the post's fault and does not count)."""
    values: dict[str, Any] = {"next_attempt_at": retry_at}
    if error is not None:
        values["last_error"] = error[:2000]
    if counts:
        values["attempts"] = col(OutboxPost.attempts) + 1
    return _settle(post_id, holder=holder, epoch=epoch, session=session, **values)


def settle_dead(
    post_id: int, *, holder: str, epoch: int, error: str, at: datetime, session: Session
) -> bool:
    """Park a post Slack refuses for good: never sent again, never blocks the posts behind it."""
    return _settle(
        post_id,
        holder=holder,
        epoch=epoch,
        session=session,
        dead_at=at,
        last_error=error[:2000],
        attempts=col(OutboxPost.attempts) + 1,
    )


def mark_sent(post: OutboxPost, *, at: datetime, session: Session) -> None:
    """Mark a post delivered by something other than the leader's worker (the console)."""
    post.sent_at = at
    post.attempts += 1
    post.last_error = None
    session.add(post)


def backoff(attempts: int) -> timedelta:
    """1s, 2s, 4s … capped at five minutes."""
    return timedelta(seconds=min(300, 2 ** max(0, attempts)))


def last_post_at(message_key: str, *, session: Session) -> datetime | None:
    """When the newest version of a keyed message was queued."""
    query = (
        select(OutboxPost.created_at)
        .where(OutboxPost.message_key == message_key)
        .order_by(col(OutboxPost.id).desc())
    )
    return session.exec(query).first()


def get_message(key: str, *, session: Session) -> SlackMessage | None:
    return session.get(SlackMessage, key)


def remember_message(key: str, *, channel: str, ts: str, session: Session) -> None:
    existing = session.get(SlackMessage, key)
    if existing is None:
        session.add(SlackMessage(key=key, channel=channel, ts=ts))
    else:
        existing.channel, existing.ts = channel, ts
        session.add(existing)


# ---------------------------------------------------------------- Retry-After, per method


def hold_method(method: str, *, seconds: float, session: Session) -> None:
    """Remember Slack's Retry-After for `method` on the database's clock, so a new leader
    honours what the old one was told. Extends, never shortens, a hold."""
    until = db_seconds() + seconds
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(SlackRateLimit)
        .where(col(SlackRateLimit.method) == method)
        .values(
            until=sa.case((col(SlackRateLimit.until) < until, until), else_=SlackRateLimit.until)
        )
    )
    if result.rowcount == 0:
        # Only the fenced leader writes holds, so no other insert can race this one.
        session.execute(sa.insert(SlackRateLimit).values(method=method, until=until))


def method_holds(*, session: Session) -> dict[str, float]:
    """Methods Slack asked us to leave alone, and for how many more seconds."""
    remaining = col(SlackRateLimit.until) - db_seconds()
    query = sa.select(col(SlackRateLimit.method), remaining).where(remaining > 0)
    return {str(method): float(left) for method, left in session.execute(query).all()}


def last_posts_at(message_keys: Sequence[str], *, session: Session) -> dict[str, datetime]:
    """`last_post_at` of many keyed messages in one query (keys never posted are absent)."""
    if not message_keys:
        return {}
    newest = (
        sa.select(sa.func.max(col(OutboxPost.id)))
        .where(col(OutboxPost.message_key).in_(list(message_keys)))
        .group_by(col(OutboxPost.message_key))
    )
    query = sa.select(col(OutboxPost.message_key), col(OutboxPost.created_at)).where(
        col(OutboxPost.id).in_(newest)
    )
    return {str(key): at for key, at in session.execute(query)}
