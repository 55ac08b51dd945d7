"""Kept answers (bot/slack/ack_cache.py): a repeated `/wave status` is answered without touching
the database, a write by this process is seen by the very next command, and a write by another
process within FRESH. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.runtime import Runtime
from bot.slack.ack_cache import FRESH, AckCache
from commands.core import Reply, Request
from commands.policy import Policy
from commands.router import Routed, route
from storage.db import make_engine, session_scope
from storage.models import OutboxPost, ReleaseState, Rollout
from storage.releases import create_release
from storage.rollouts import create_rollout
from storage.versions import recording, track_writes
from tests.conftest import Service, service_settings
from tests.support.clock import FakeClock
from tests.support.slack import FakeSlack
from tests.support.waves import start

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def statements(any_engine: Engine) -> Iterator[list[str]]:
    """Every statement the service's engine runs."""
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(str(args[2]))

    sa.event.listen(any_engine, "after_cursor_execute", note)
    yield seen
    sa.event.remove(any_engine, "after_cursor_execute", note)


async def status_text(service: Service, text: str = "status") -> str:
    response = await service.command("/wave", text)
    assert response.status == 200
    return str((await response.json())["text"])


def seed_running(engine: Engine, version: str) -> None:
    """A running rollout of `version`, written straight to the tables."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        release = create_release(version, actor="U0RM1", at=now, session=session)
        release.state = ReleaseState.rolling_out
        assert release.id is not None
        rollout = Rollout(
            release_id=release.id,
            plan="default",
            wave_started_at=now,
            started_by="U0RM1",
            started_at=now,
        )
        create_rollout(rollout, session=session)


async def test_a_repeated_status_is_answered_without_the_database(
    any_service: Service, statements: list[str]
) -> None:
    first = await status_text(any_service)
    assert first.startswith("No rollout is active.")
    statements.clear()
    assert await status_text(any_service) == first
    assert await status_text(any_service) == first
    assert statements == []


async def test_a_write_by_this_process_is_seen_by_the_next_command(
    any_service: Service, statements: list[str]
) -> None:
    assert (await status_text(any_service)).startswith("No rollout is active.")
    with any_service.runtime.unit() as ctx:
        await start(ctx, "1.0")
    # No clock moved: the kept answer went because a table it read was written.
    assert "1.0" in await status_text(any_service)
    # Straight to the tables, on the same engine but outside any unit of work, too.
    seed_running(any_service.runtime.engine, "2.0")
    assert "2.0" in await status_text(any_service)
    statements.clear()
    assert "2.0" in await status_text(any_service)
    assert statements == []  # and kept again


async def test_a_write_to_a_table_it_did_not_read_keeps_the_answer(
    any_service: Service, statements: list[str], clock: FakeClock
) -> None:
    first = await status_text(any_service)
    with any_service.runtime.unit() as ctx:
        ctx.session.add(
            OutboxPost(channel="C0X", text="hi", created_at=clock(), next_attempt_at=clock())
        )
    statements.clear()
    assert await status_text(any_service) == first
    assert statements == []


async def test_a_kept_answer_is_used_only_while_fresh(
    any_service: Service, statements: list[str], clock: FakeClock
) -> None:
    await status_text(any_service)
    clock.advance(FRESH)
    statements.clear()
    await status_text(any_service)
    assert statements != []  # computed again
    clock.advance(seconds=-5)  # a clock that went back keeps nothing either
    statements.clear()
    await status_text(any_service)
    assert statements != []


async def test_a_write_by_another_process_is_seen_within_fresh(
    any_service: Service, database_url: str, clock: FakeClock
) -> None:
    assert (await status_text(any_service)).startswith("No rollout is active.")
    # Another process (a second replica) starts a rollout; its writes are not counted here.
    script = (
        "import sys; from storage.db import make_engine; "
        "from tests.bot.slack.test_ack_cache import seed_running; "
        "seed_running(make_engine(sys.argv[1]), '3.0')"
    )
    argv = [sys.executable, "-c", script, database_url]
    await asyncio.to_thread(subprocess.run, argv, cwd=ROOT, check=True)
    assert (await status_text(any_service)).startswith("No rollout is active.")  # kept
    clock.advance(FRESH)
    assert "3.0" in await status_text(any_service)


def test_the_tables_read_and_written_are_noted(any_engine: Engine) -> None:
    versions = track_writes(any_engine)
    before = versions.snapshot()
    with recording() as reads, session_scope(any_engine) as session:
        session.execute(sa.select(col(Rollout.id))).all()
    assert reads.tables == {"rollout"}
    assert not reads.wrote
    seen = versions.of(before, reads)
    assert versions.unchanged(seen)
    seed_running(make_engine(str(any_engine.url)), "5.0")  # another engine: not counted
    assert versions.unchanged(seen)
    with recording() as writes:
        seed_running(any_engine, "6.0")
    assert writes.wrote  # an answer computed while writing is never kept
    assert not versions.unchanged(seen)


class SlowRuntime(Runtime):
    """A runtime whose commands wait for `go` before they run (as one on a worker thread
    would be awaited), counting how many ran."""

    go: asyncio.Event
    ran: int = 0

    async def run_command(self, command: Request | Routed) -> Reply:
        self.ran += 1
        await self.go.wait()
        return await super().run_command(command)


@pytest.fixture
def slow(slack: FakeSlack, any_engine: Engine, policy: Policy, clock: FakeClock) -> SlowRuntime:
    runtime = SlowRuntime(
        settings=service_settings(slack, str(any_engine.url)),
        engine=any_engine,
        policy=policy,
        clock=clock,
    )
    runtime.go = asyncio.Event()
    return runtime


STATUS = route(Request(command="/wave", text="status", user_id="U0RM1"))


async def test_requests_for_an_answer_being_computed_wait_for_it(slow: SlowRuntime) -> None:
    cache = AckCache(track_writes(slow.engine))
    answers = [asyncio.create_task(cache.answer(slow, STATUS)) for _ in range(5)]
    await asyncio.sleep(0)
    slow.go.set()
    texts = {(await a).payload["text"] for a in answers}
    assert slow.ran == 1
    assert len(texts) == 1


async def test_a_request_after_a_write_does_not_wait_for_an_answer_begun_before_it(
    slow: SlowRuntime,
) -> None:
    cache = AckCache(track_writes(slow.engine))
    first = asyncio.create_task(cache.answer(slow, STATUS))
    await asyncio.sleep(0)
    seed_running(slow.engine, "7.0")  # written while the first answer is computed
    second = asyncio.create_task(cache.answer(slow, STATUS))
    await asyncio.sleep(0)
    slow.go.set()
    assert slow.ran == 2
    assert "7.0" in (await second).payload["text"]
    await first
    assert "7.0" in (await cache.answer(slow, STATUS)).payload["text"]  # and so does what is kept
