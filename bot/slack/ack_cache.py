"""The answers of the hot read-only commands, kept for a moment: `/wave status` and `/ready`
asked again with nothing written in between are answered from memory, with no session, query
or rendering.

A kept answer is used only while all of these hold, so it is the answer the command would give:
- no table it read was written by this process since (storage/versions.py): a write here is
  seen by the very next command;
- it is younger than `FRESH` by the runtime's clock, and the clock did not go back: a write by
  another process (a second replica on PostgreSQL) is seen within `FRESH`, and a time in a reply
  ("observed 4s") is at most that much behind;
- the request is the same: command, text, user, their groups (and the unread ones), channel;
- the policy is the same object.
An answer whose computation wrote anything (an audited refusal), or read a table not known
(raw SQL), is not kept.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Engine

from bot.runtime import Runtime
from bot.slack.render import slack_payload
from bot.telemetry import observe_reply
from commands.core import Reply
from commands.policy import Policy
from commands.router import Routed
from storage.versions import EVERY, TableVersions, recording, track_writes

FRESH = timedelta(seconds=1)
# The commands whose answers are kept: read-only, and the hot ones.
KEPT = frozenset({"wave status", "ready status"})
MOST = 256  # answers kept at once; beyond it the oldest go

Key = tuple[str, str, str, frozenset[str], frozenset[str], str | None]


@dataclass(frozen=True)
class Answer:
    """An ack's payload and its JSON body."""

    payload: dict[str, Any]
    body: bytes


@dataclass(frozen=True)
class _Kept:
    seen: dict[str, int]  # the counters of the tables it read, when it was computed
    at: datetime
    policy: Policy
    reply: Reply
    answer: Answer


def answer_of(reply: Reply) -> Answer:
    payload = slack_payload(reply)
    return Answer(payload, json.dumps(payload).encode())


class AckCache:
    def __init__(self, versions: TableVersions) -> None:
        self.versions = versions
        self._kept: dict[Key, _Kept] = {}
        # Answers being computed, with the table counters when they began: a request for the
        # same answer while nothing was written since waits for it instead of computing again.
        self._computing: dict[Key, tuple[dict[str, int], asyncio.Future[tuple[Reply, Answer]]]] = {}

    @staticmethod
    def key(routed: Routed) -> Key | None:
        if routed.name not in KEPT or not isinstance(routed.target, tuple):
            return None
        r = routed.request
        return (r.command, r.text, r.user_id, r.user_groups, r.unread_groups, r.channel_id)

    async def answer(self, runtime: Runtime, routed: Routed) -> Answer:
        """The command's answer: kept, or run as a unit of work (and kept when it may be)."""
        key = self.key(routed)
        if key is None:
            return answer_of(await runtime.run_command(routed))
        now = runtime.clock()
        kept = self._kept.get(key)
        if (
            kept is not None
            and timedelta(0) <= now - kept.at < FRESH
            and kept.policy is runtime.policy
            and self.versions.unchanged(kept.seen)
        ):
            observe_reply(routed, kept.reply)
            return kept.answer
        before = self.versions.snapshot()
        computing = self._computing.get(key)
        if computing is not None and computing[0] == before:
            reply, answer = await asyncio.shield(computing[1])
            observe_reply(routed, reply)
            return answer
        future: asyncio.Future[tuple[Reply, Answer]] = asyncio.get_running_loop().create_future()
        self._computing[key] = (before, future)
        try:
            reply, answer = await self._compute(runtime, routed, key, before, now)
        except BaseException as error:
            if isinstance(error, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(error)
                future.exception()  # the waiters get it; nobody else has to
            raise
        else:
            future.set_result((reply, answer))
        finally:
            if self._computing.get(key, (None, None))[1] is future:
                del self._computing[key]
        return answer

    async def _compute(
        self, runtime: Runtime, routed: Routed, key: Key, before: dict[str, int], now: datetime
    ) -> tuple[Reply, Answer]:
        with recording() as reads:
            reply = await runtime.run_command(routed)
        answer = answer_of(reply)
        seen = self.versions.of(before, reads)
        # Kept only when the reads were seen (a command that read no table was not recorded,
        # say on another thread's loop: nothing would invalidate it), nothing was written, no
        # table unknown was read, and no table it read was written while it ran.
        if (
            reads.tables
            and not reads.wrote
            and EVERY not in reads.tables
            and self.versions.unchanged(seen)
        ):
            if len(self._kept) >= MOST:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = _Kept(seen, now, runtime.policy, reply, answer)
        return reply, answer


_CACHES: WeakKeyDictionary[Engine, AckCache] = WeakKeyDictionary()


def ack_cache(runtime: Runtime) -> AckCache:
    cache = _CACHES.get(runtime.engine)
    if cache is None:
        cache = _CACHES[runtime.engine] = AckCache(track_writes(runtime.engine))
    return cache
