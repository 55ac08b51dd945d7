"""Delivers queued Slack posts exactly once and in order: claim, send, settle.

- A round claims a batch in one short transaction (fenced: only the lease's current epoch may
  claim), sends each post with no session open, and settles each in another short transaction.
- Order: the posts of one thread and of one keyed message (a status message and the events in
  its thread share the key) go one at a time, oldest first; a post that waits (429, back-off)
  holds the later posts of its keys, never other posts.
- Retry-After holds every later call of that method until it passes, in memory and in the
  database, so a new leader honours it too.
- A post Slack refuses for good is parked as dead at once, any other failure after MAX_ATTEMPTS
  tries; it is logged, counted in /metrics, and the posts behind it go on.
- De-duplication: every chat.postMessage carries the post's stable `client_msg_id`. A post whose
  claim was left by a dead or fenced leader may have reached Slack already; it is re-sent with
  the same id, and a de-duplicating Slack (or proxy) answers with the first message instead of
  posting it twice — the fake Slack of the tests does exactly that. We chose this over looking
  the message up before re-posting (conversations.history): one call instead of two per retry,
  and no history scope. chat.update needs nothing: sending the same update twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine

from bot.leader import Leadership
from bot.lease_guard import GuardedClient, LeaseLapsed
from bot.telemetry import observe_outbox_dead, observe_slack_error
from commands.core import Clock
from storage.db import session_scope
from storage.lease import Fence, Fenced, check_fence
from storage.outbox import (
    backoff,
    claim_posts,
    get_message,
    hold_method,
    method_holds,
    pending_posts,
    remember_message,
    settle_dead,
    settle_failed,
    settle_sent,
)

log = logging.getLogger(__name__)

# Errors that no retry can cure for this post: park it at once.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_attachments",
        "too_many_attachments",
        "invalid_arguments",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "restricted_action",
    }
)
# Errors of the app's credentials, not of a post: every call would fail alike until a person
# fixes the token or the scopes, so the whole outbox waits (AUTH_HOLD) and no post is blamed.
AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
AUTH_HOLD = timedelta(seconds=60)
# Tries of a post that keeps failing for any other reason (5xx, timeouts): ~30 s of back-off.
MAX_ATTEMPTS = 5
# Posts claimed per round (one per thread or message key), and rounds per delivery.
BATCH = 20
MAX_ROUNDS = 50
EVERY_METHOD = "*"
LOCAL = Fence("local", "local", 0)


@dataclass(frozen=True)
class Planned:
    """One claimed post, copied out of its session so nothing is held while Slack answers."""

    id: int
    method: str
    channel: str
    text: str
    blocks: list[dict[str, Any]] | None
    message_key: str | None
    thread_key: str | None
    ts: str | None  # the message to update
    thread_ts: str | None
    client_msg_id: str
    attempts: int

    @property
    def keys(self) -> set[str]:
        return {key for key in (self.thread_key, self.message_key) if key}


@dataclass(frozen=True)
class Outcome:
    channel: str | None = None
    ts: str | None = None
    error: str | None = None
    retry_after: float | None = None  # a 429
    hold_all: bool = False  # the credentials are broken
    dead: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class OutboxDelivery:
    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        clock: Clock,
        *,
        leadership: Leadership | None = None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.clock = clock
        # None: a process alone (the console, tests driving it by hand); nothing to fence.
        self.leadership = leadership
        self.delivered = 0
        self.dead = 0
        self.errors: dict[str, int] = {}
        # method → when Slack allows it again, on self.clock.
        self.holds: dict[str, datetime] = {}
        self._holds_loaded_for: int | None = None
        # Posts go out through a client that checks the lease as the request leaves.
        self.sender = GuardedClient(client, self._leading)

    # ------------------------------------------------------------ leadership

    def _leading(self) -> bool:
        return self.leadership is None or self.leadership.leading

    def _fence(self) -> Fence:
        return LOCAL if self.leadership is None else self.leadership.fence()

    def _check(self, fence: Fence, session: Any) -> None:
        if self.leadership is not None:
            check_fence(fence, session=session)

    def held(self, method: str, now: datetime) -> bool:
        return any(until > now for m, until in self.holds.items() if m in (method, EVERY_METHOD))

    def _hold(self, method: str, until: datetime) -> None:
        self.holds[method] = max(until, self.holds.get(method, until))

    # ------------------------------------------------------------ claim

    def _claim_batch(self) -> list[Planned]:
        now = self.clock()
        fence = self._fence()
        with session_scope(self.engine) as session:
            if self.leadership is not None and self._holds_loaded_for != fence.epoch:
                # A new leader takes over the Retry-Afters its predecessors were given.
                for method, left in method_holds(session=session).items():
                    self._hold(method, now + timedelta(seconds=left))
                self._holds_loaded_for = fence.epoch
            posts = pending_posts(session=session, limit=BATCH * 25)
            still_to_post = {post.message_key for post in posts if post.message_key}
            blocked: set[str] = set()
            chosen: list[Planned] = []
            for post in posts:
                assert post.id is not None
                keys = {key for key in (post.thread_key, post.message_key) if key}
                if keys & blocked:
                    blocked |= keys
                    continue
                # One post per key per round: the next waits for this one's outcome.
                blocked |= keys
                if post.next_attempt_at > now:
                    continue
                existing = (
                    get_message(post.message_key, session=session) if post.message_key else None
                )
                method = "chat.update" if existing is not None else "chat.postMessage"
                if self.held(method, now):
                    continue
                thread_ts = None
                if post.thread_key and existing is None:
                    parent = get_message(post.thread_key, session=session)
                    if parent is not None:
                        thread_ts = parent.ts
                    elif post.thread_key in still_to_post:
                        continue  # the thread's first message is not posted yet
                    # else its parent is dead or was never queued: post it in the channel.
                chosen.append(
                    Planned(
                        id=post.id,
                        method=method,
                        channel=existing.channel if existing is not None else post.channel,
                        text=post.text,
                        blocks=json.loads(post.blocks) if post.blocks else None,
                        message_key=post.message_key,
                        thread_key=post.thread_key,
                        ts=existing.ts if existing is not None else None,
                        thread_ts=thread_ts,
                        client_msg_id=post.client_msg_id,
                        attempts=post.attempts,
                    )
                )
                if len(chosen) >= BATCH:
                    break
            claim_posts(
                [p.id for p in chosen],
                holder=fence.holder,
                epoch=fence.epoch,
                at=now,
                session=session,
            )
            self._check(fence, session)
        return chosen

    # ------------------------------------------------------------ send

    async def _send(self, post: Planned) -> Outcome:
        try:
            # Without a lease (a process alone) there is nothing to guard.
            client = self.client if self.leadership is None else self.sender.client()
            if post.ts is not None:
                await client.chat_update(
                    channel=post.channel, ts=post.ts, text=post.text, blocks=post.blocks
                )
                return Outcome(channel=post.channel, ts=post.ts)
            response = await client.chat_postMessage(
                channel=post.channel,
                text=post.text,
                blocks=post.blocks,
                thread_ts=post.thread_ts,
                client_msg_id=post.client_msg_id,
            )
            return Outcome(channel=str(response["channel"]), ts=str(response["ts"]))
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            observe_slack_error(post.method, error)
            self.errors[error] = self.errors.get(error, 0) + 1
            if exc.response.status_code == 429:
                header = exc.response.headers.get("Retry-After") or "1"
                try:
                    wait = max(1.0, float(header))
                except ValueError:
                    wait = 1.0
                return Outcome(error=error, retry_after=wait)
            if error in AUTH_ERRORS:
                return Outcome(error=error, hold_all=True)
            dead = error in PERMANENT_ERRORS or post.attempts + 1 >= MAX_ATTEMPTS
            return Outcome(error=error, dead=dead)
        except (aiohttp.ClientError, TimeoutError) as exc:
            observe_slack_error(post.method, "connection")
            self.errors["connection"] = self.errors.get("connection", 0) + 1
            return Outcome(error=f"connection: {exc}", dead=post.attempts + 1 >= MAX_ATTEMPTS)

    # ------------------------------------------------------------ settle

    def _settle(self, post: Planned, outcome: Outcome | None) -> None:
        """Record what happened to a claimed post; None: it was held back, not sent."""
        now = self.clock()
        fence = self._fence()
        claim: dict[str, Any] = {"holder": fence.holder, "epoch": fence.epoch}
        with session_scope(self.engine) as session:
            # For a post that goes back to the queue: when, and whether the try counts.
            retry: tuple[datetime, bool] | None = None
            if outcome is None:
                holds = [u for m, u in self.holds.items() if m in (post.method, EVERY_METHOD)]
                retry = (max(holds, default=now), False)
            elif outcome.ok:
                if settle_sent(post.id, at=now, session=session, **claim) and post.message_key:
                    assert outcome.channel is not None
                    assert outcome.ts is not None
                    remember_message(
                        post.message_key, channel=outcome.channel, ts=outcome.ts, session=session
                    )
            elif outcome.retry_after is not None:
                until = now + timedelta(seconds=outcome.retry_after)
                self._hold(post.method, until)
                hold_method(post.method, seconds=outcome.retry_after, session=session)
                log.warning(
                    "slack %s rate limited: holding it %.0fs", post.method, outcome.retry_after
                )
                retry = (until, False)  # Slack's pace, not the post's fault
            elif outcome.hold_all:
                self._hold(EVERY_METHOD, now + AUTH_HOLD)
                log.error("slack refuses the bot token (%s): every post waits", outcome.error)
                retry = (now + AUTH_HOLD, False)
            elif outcome.dead:
                assert outcome.error is not None
                if settle_dead(post.id, error=outcome.error, at=now, session=session, **claim):
                    self.dead += 1
                    observe_outbox_dead(post.method, outcome.error.split(":")[0])
                    log.error(
                        "slack post %s to %s parked as dead after %d tries: %s",
                        post.id,
                        post.channel,
                        post.attempts + 1,
                        outcome.error,
                    )
            else:
                retry = (now + backoff(post.attempts), True)
                log.warning(
                    "slack post %s failed (%s); retry at %s", post.id, outcome.error, retry[0]
                )
            if retry is not None:
                error = None if outcome is None else outcome.error
                settle_failed(
                    post.id,
                    error=error,
                    retry_at=retry[0],
                    counts=retry[1],
                    session=session,
                    **claim,
                )
            self._check(fence, session)

    # ------------------------------------------------------------ rounds

    async def deliver_due(self) -> int:
        """Send every post that is due, in order; returns how many Slack accepted. Claims and
        settles run on the calling loop (the work loop, bot/work.py), like every other write:
        they are short, and one writing thread never waits on another's SQLite lock."""
        sent = 0
        try:
            for _ in range(MAX_ROUNDS):
                if not self._leading():
                    break
                batch = self._claim_batch()
                if not batch:
                    break
                progressed = False
                for post in batch:
                    # Checked right before each call, on this process's monotonic clock: a
                    # leader that was frozen past its lease wakes up here and sends nothing
                    # (its claims are left to the new leader, who re-sends them de-duplicated).
                    if not self._leading():
                        return sent
                    if self.held(post.method, self.clock()):
                        self._settle(post, None)
                        continue
                    try:
                        outcome = await self._send(post)
                    except LeaseLapsed:
                        self._settle(post, None)  # not sent; fenced if the lease is gone
                        return sent
                    self._settle(post, outcome)
                    if outcome.ok:
                        sent += 1
                        progressed = True
                if not progressed:
                    break
        except Fenced as exc:
            log.warning("outbox delivery stopped: %s", exc)
        finally:
            self.delivered += sent
        return sent

    async def run(
        self,
        wake: asyncio.Event,
        *,
        idle: float = 1.0,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        """Deliver until cancelled: at once when woken, else every `idle` seconds. With
        `leading`, only while it says so: one replica delivers, or a post would go out twice."""
        try:
            while True:
                wake.clear()
                try:
                    if leading is None or leading():
                        await self.deliver_due()
                except Exception:  # a broken database must not kill the worker; it retries
                    log.exception("outbox delivery failed")
                # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow a
                # cancellation that arrives as the wake-up does (gh-86296), and the worker
                # would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle):
                        await wake.wait()
        finally:
            await self.sender.close()
