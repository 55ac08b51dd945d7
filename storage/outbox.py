"""The Slack outbox: posts are written in the same transaction as the change they announce,
then delivered by the bot; a crash or a 429 leaves them here to be retried."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from storage.models import OutboxPost, SlackMessage


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
    """Queue a post. A keyed message that still has an unsent version takes the new content
    instead of queueing another: a burst of updates costs Slack one call, not one per change."""
    if message_key is not None:
        waiting = session.exec(
            select(OutboxPost).where(
                OutboxPost.message_key == message_key, col(OutboxPost.sent_at).is_(None)
            )
        ).first()
        if waiting is not None:
            waiting.text = text
            waiting.blocks = json.dumps(blocks) if blocks else None
            session.add(waiting)
            session.flush()
            return waiting
    post = OutboxPost(
        channel=channel,
        text=text,
        blocks=json.dumps(blocks) if blocks else None,
        message_key=message_key,
        thread_key=thread_key,
        created_at=at,
        next_attempt_at=at,
    )
    session.add(post)
    session.flush()
    return post


def due_posts(*, now: datetime, session: Session, limit: int = 50) -> list[OutboxPost]:
    query = (
        select(OutboxPost)
        .where(col(OutboxPost.sent_at).is_(None), OutboxPost.next_attempt_at <= now)
        .order_by(col(OutboxPost.id))
        .limit(limit)
    )
    return list(session.exec(query))


def pending_posts(*, session: Session) -> list[OutboxPost]:
    query = select(OutboxPost).where(col(OutboxPost.sent_at).is_(None)).order_by(col(OutboxPost.id))
    return list(session.exec(query))


def mark_sent(post: OutboxPost, *, at: datetime, session: Session) -> None:
    post.sent_at = at
    post.attempts += 1
    post.last_error = None
    session.add(post)


def mark_failed(post: OutboxPost, *, error: str, retry_at: datetime, session: Session) -> None:
    post.attempts += 1
    post.last_error = error[:2000]
    post.next_attempt_at = retry_at
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
