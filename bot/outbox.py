"""Delivers queued Slack posts; a 429 waits for Retry-After, other failures back off.

Posts stay in the outbox table until Slack accepted them, so a crash or a rate limit loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.telemetry import observe_slack_error
from commands.core import Clock
from storage.db import session_scope
from storage.models import OutboxPost
from storage.outbox import (
    backoff,
    due_posts,
    get_message,
    mark_failed,
    mark_sent,
    remember_message,
)

log = logging.getLogger(__name__)


class OutboxDelivery:
    def __init__(self, engine: Engine, client: AsyncWebClient, clock: Clock) -> None:
        self.engine = engine
        self.client = client
        self.clock = clock
        self.delivered = 0
        self.errors: dict[str, int] = {}

    async def deliver_due(self) -> int:
        """Send every post that is due, oldest first; returns how many were sent."""
        sent = 0
        with session_scope(self.engine) as session:
            posts = due_posts(now=self.clock(), session=session)
            blocked_threads: set[str] = set()
            for post in posts:
                if post.thread_key and post.thread_key in blocked_threads:
                    continue  # keep the thread's order: wait for the earlier post
                if not await self._deliver(post, session):
                    if post.thread_key:
                        blocked_threads.add(post.thread_key)
                    if post.message_key:
                        blocked_threads.add(post.message_key)
                    session.commit()
                    continue
                session.commit()
                sent += 1
        self.delivered += sent
        return sent

    async def _deliver(self, post: OutboxPost, session: Session) -> bool:
        blocks: list[dict[str, Any]] | None = json.loads(post.blocks) if post.blocks else None
        now = self.clock()
        method = "chat.postMessage"
        try:
            existing = get_message(post.message_key, session=session) if post.message_key else None
            if existing is not None:
                method = "chat.update"
                await self.client.chat_update(
                    channel=existing.channel, ts=existing.ts, text=post.text, blocks=blocks
                )
            else:
                thread_ts = None
                if post.thread_key:
                    parent = get_message(post.thread_key, session=session)
                    if parent is None:
                        # The thread's parent is not posted yet; try again shortly.
                        mark_failed(
                            post,
                            error="waiting for the thread's first message",
                            retry_at=now + timedelta(seconds=1),
                            session=session,
                        )
                        return False
                    thread_ts = parent.ts
                response = await self.client.chat_postMessage(
                    channel=post.channel, text=post.text, blocks=blocks, thread_ts=thread_ts
                )
                if post.message_key:
                    remember_message(
                        post.message_key,
                        channel=str(response["channel"]),
                        ts=str(response["ts"]),
                        session=session,
                    )
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            self.errors[error] = self.errors.get(error, 0) + 1
            observe_slack_error(method, error)
            if exc.response.status_code == 429:
                wait = int(exc.response.headers.get("Retry-After", "1") or 1)
                retry_at = now + timedelta(seconds=max(1, wait))
            else:
                retry_at = now + backoff(post.attempts)
            log.warning("slack post %s failed (%s); retry at %s", post.id, error, retry_at)
            mark_failed(post, error=error, retry_at=retry_at, session=session)
            return False
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.errors["connection"] = self.errors.get("connection", 0) + 1
            observe_slack_error(method, "connection")
            retry_at = now + backoff(post.attempts)
            log.warning("slack post %s failed (%s); retry at %s", post.id, exc, retry_at)
            mark_failed(post, error=f"connection: {exc}", retry_at=retry_at, session=session)
            return False
        mark_sent(post, at=now, session=session)
        return True

    async def run(
        self,
        wake: asyncio.Event,
        *,
        idle: float = 1.0,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        """Deliver until cancelled: at once when woken, else every `idle` seconds. With
        `leading`, only while it says so: one replica delivers, or a post would go out twice."""
        while True:
            wake.clear()
            try:
                if leading is None or leading():
                    await self.deliver_due()
            except Exception:  # a broken database must not kill the worker; it retries
                log.exception("outbox delivery failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=idle)
