"""One leader among replicas: the lease on the database's clock (SQLite and PostgreSQL), its
epoch as a fencing token, the Leadership that renews it, and the scheduler and outbox doing
their work only where it leads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.jobs.job import leader_only
from bot.jobs.scheduler import build_scheduler
from bot.leader import Leadership, fenced
from bot.outbox import OutboxDelivery
from bot.runtime import Runtime
from bot.settings import Settings
from commands.core import system_clock
from commands.policy import Policy
from storage.db import make_engine
from storage.lease import (
    Fence,
    Fenced,
    acquire_lease,
    check_fence,
    lease_epoch,
    lease_holder,
    release_lease,
)
from storage.models import Release, ReleaseState
from storage.outbox import enqueue_post, pending_posts
from tests.conftest import PG_SKIP, PG_URL, create_schema, reset_postgres, service_settings
from tests.support.clock import FakeClock
from tests.support.slack import BOT_TOKEN, FakeSlack

TTL = timedelta(seconds=30)
SHORT = timedelta(seconds=0.4)


def take(
    engine: Engine, holder: str, ttl: timedelta = TTL, *, known: int | None = None
) -> int | None:
    """The epoch `holder` leads at after one try, or None."""
    with Session(engine) as session:
        claim = acquire_lease(
            "scheduler", holder=holder, ttl=ttl, known_epoch=known, session=session
        )
        return claim.epoch


def holder(engine: Engine) -> str | None:
    with Session(engine) as session:
        return lease_holder("scheduler", session=session)


class Monotonic:
    """A settable monotonic clock for a Leadership's own judgement of its lease."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- the lease


def test_first_taker_holds_the_lease_and_others_are_refused(any_engine: Engine) -> None:
    assert take(any_engine, "a") == 1
    assert take(any_engine, "b") is None
    assert holder(any_engine) == "a"


def test_holder_renews_at_the_same_epoch(any_engine: Engine) -> None:
    assert take(any_engine, "a") == 1
    assert take(any_engine, "a", known=1) == 1
    assert take(any_engine, "b") is None
    assert holder(any_engine) == "a"


def test_expired_lease_is_taken_over_with_a_new_epoch(any_engine: Engine) -> None:
    assert take(any_engine, "a", SHORT) == 1
    assert take(any_engine, "b", SHORT) is None
    time.sleep(SHORT.total_seconds() + 0.2)  # expiry is the database's, so real time passes
    assert holder(any_engine) is None
    assert take(any_engine, "b") == 2
    assert holder(any_engine) == "b"
    # The old holder coming back with the epoch it knew finds it taken.
    assert take(any_engine, "a", known=1) is None


def test_a_restarted_holder_takes_its_lease_back_at_once_with_a_new_epoch(
    any_engine: Engine,
) -> None:
    assert take(any_engine, "host:3000") == 1
    # The same replica name, a fresh process (it knows no epoch): no wait for expiry, and
    # whatever the old process still does is fenced off by the new epoch.
    assert take(any_engine, "host:3000") == 2
    with Session(any_engine) as session:
        with pytest.raises(Fenced):
            check_fence(Fence("scheduler", "host:3000", 1), session=session)
        check_fence(Fence("scheduler", "host:3000", 2), session=session)


def test_release_hands_over_at_once_and_only_by_the_holder(any_engine: Engine) -> None:
    assert take(any_engine, "a") == 1
    with Session(any_engine) as session:
        assert not release_lease("scheduler", holder="b", epoch=1, session=session)
        assert release_lease("scheduler", holder="a", epoch=1, session=session)
    assert take(any_engine, "b") == 2


def test_racing_replicas_elect_exactly_one(any_engine: Engine) -> None:
    """Eight threads (eight connections) try at once, on an empty table and then on an expired
    row: each time exactly one wins."""
    assert race(any_engine, contenders=8, ttl=SHORT) == 1
    time.sleep(SHORT.total_seconds() + 0.2)
    assert race(any_engine, contenders=8, ttl=TTL) == 1
    assert holder(any_engine) is not None


def race(engine: Engine, *, contenders: int, ttl: timedelta) -> int:
    barrier = threading.Barrier(contenders)
    wins: list[str] = []

    def contend(name: str) -> None:
        barrier.wait()
        if take(engine, name, ttl) is not None:
            wins.append(name)

    threads = [threading.Thread(target=contend, args=(f"r{i}",)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert holder(engine) in wins
    return len(wins)


# ---------------------------------------------------------------- fencing


def test_a_fenced_write_by_a_stale_epoch_changes_nothing(any_engine: Engine) -> None:
    assert take(any_engine, "a", SHORT) == 1
    time.sleep(SHORT.total_seconds() + 0.2)
    assert take(any_engine, "b") == 2  # a froze; b took over
    stale = Fence("scheduler", "a", 1)
    with fenced(stale), Session(any_engine) as session:
        session.add(Release(version="9.9", created_by="U0RM1", created_at=datetime.now(UTC)))
        with pytest.raises(Fenced):
            session.commit()
    with Session(any_engine) as session:
        assert session.exec(select(Release)).all() == []
    # The current leader's write goes through, and a read-only block needs no check.
    with fenced(Fence("scheduler", "b", 2)), Session(any_engine) as session:
        session.add(Release(version="9.9", created_by="U0RM1", created_at=datetime.now(UTC)))
        session.commit()
    with fenced(stale), Session(any_engine) as session:
        assert session.exec(select(Release)).one().state == ReleaseState.candidate
        session.commit()
    with Session(any_engine) as session:
        assert lease_epoch("scheduler", session=session) == 2


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason=PG_SKIP)
def test_a_holder_frozen_after_its_fence_check_does_not_block_a_take_over() -> None:
    """SIGSTOP (or a VM freeze) right after a fence check leaves the leader's transaction idle
    while it holds the lease row; the other replica's take-over must not wait for it to wake.
    PostgreSQL ends that transaction, the frozen write never lands, and the take-over goes on."""
    assert PG_URL  # SQLite has one process per file: no other replica to block
    reset_postgres(PG_URL).dispose()
    engine = make_engine(PG_URL)
    create_schema(engine)
    try:
        assert take(engine, "a", SHORT) == 1
        frozen = Session(engine)
        frozen.add(Release(version="9.9", created_by="U0RM1", created_at=datetime.now(UTC)))
        frozen.flush()
        check_fence(Fence("scheduler", "a", 1), session=frozen)  # holds the lease row now
        time.sleep(SHORT.total_seconds() + 0.1)  # a's lease has run out; a is still frozen

        started = time.monotonic()
        assert take(engine, "b") == 2
        waited = time.monotonic() - started
        assert waited < 3.0, f"the take-over waited {waited:.1f}s on a frozen holder"

        with pytest.raises(sa.exc.SQLAlchemyError):  # a wakes: its transaction is gone
            frozen.commit()
        frozen.close()
        with Session(engine) as session:
            assert session.exec(select(Release)).all() == []
            assert lease_holder("scheduler", session=session) == "b"
    finally:
        engine.dispose()


# ---------------------------------------------------------------- Leadership


async def test_leadership_follows_the_lease_on_the_database_clock(engine: Engine) -> None:
    mono = Monotonic()
    elected: list[str] = []
    ttl, every = timedelta(seconds=0.6), timedelta(seconds=0.4)
    a = Leadership(
        engine,
        holder="a",
        ttl=ttl,
        renew_every=every,
        monotonic=mono,
        on_elected=lambda: elected.append("a"),
    )
    b = Leadership(
        engine, holder="b", ttl=ttl, renew_every=every, on_elected=lambda: elected.append("b")
    )
    assert await a.renew()
    assert not await b.renew()
    assert (a.leading, b.leading) == (True, False)
    assert a.current_holder() == "a"
    # a stops renewing (it froze). On its own clock it counts itself out a margin before the
    # database's expiry...
    mono.now += ttl.total_seconds() - a.margin
    assert not a.leading
    # ...and once the database says the lease ran out, b takes it at a new epoch.
    await asyncio.sleep(ttl.total_seconds() + 0.1)
    assert await b.renew()
    assert b.leading
    assert b.epoch == 2
    assert not await a.renew()
    assert elected == ["a", "b"]


async def test_a_skewed_process_clock_neither_steals_nor_keeps_the_lease(engine: Engine) -> None:
    """The old lease compared each replica's clock: +1 h stole a live lease, and a lease written
    by a +1 h clock outlived its holder by an hour. Now only the database's clock counts."""
    ttl, every = timedelta(seconds=0.6), timedelta(seconds=0.4)
    honest = Leadership(engine, holder="honest", ttl=ttl, renew_every=every)
    # The only clock a Leadership reads is its own monotonic one (how long a renewal it saw
    # stays good); skew that one by an hour too.
    ahead = Leadership(
        engine,
        holder="ahead",
        ttl=ttl,
        renew_every=every,
        monotonic=lambda: time.monotonic() + 3600,
    )
    assert await honest.renew()
    assert not await ahead.renew()  # an hour ahead, yet the live lease is not stolen
    await honest.resign()
    assert await ahead.renew()  # the skewed replica leads...
    await asyncio.sleep(ttl.total_seconds() + 0.1)  # ...and dies
    assert await honest.renew()  # its lease did not outlive it by an hour


async def test_resign_lets_the_other_take_over_without_waiting(engine: Engine) -> None:
    a = Leadership(engine, holder="a", ttl=TTL)
    b = Leadership(engine, holder="b", ttl=TTL)
    await a.renew()
    await a.resign()
    assert not a.leading
    assert await b.renew()


async def test_jobs_run_only_where_this_process_leads(engine: Engine, policy: Policy) -> None:
    runtime = Runtime(settings=Settings(), engine=engine, policy=policy)
    ran: list[str] = []

    async def job(runtime: Runtime) -> None:
        ran.append("ran")

    guarded = leader_only(job)
    await guarded(runtime)  # no Leadership: a lone process leads
    assert runtime.leads()
    rival = Leadership(engine, holder="rival", ttl=TTL)
    await rival.renew()
    runtime.leadership = Leadership(engine, holder="me", ttl=TTL)
    await runtime.leadership.renew()
    await guarded(runtime)
    assert ran == ["ran"]
    # Every job the scheduler registers is guarded the same way, but the poll loop, which
    # asks at every turn (tests/bot/jobs/test_poll_loop.py).
    scheduler = build_scheduler(runtime)
    for scheduled in scheduler.get_jobs():
        if scheduled.id != "wave-poll":
            assert scheduled.func.__qualname__.startswith("leader_only")


async def test_the_outbox_is_delivered_only_while_leading(engine: Engine, policy: Policy) -> None:
    slack = await FakeSlack().start()
    try:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        clock = FakeClock()
        delivery = OutboxDelivery(engine, client, clock)
        with Session(engine) as session:
            enqueue_post(channel="C0ROLLOUTS", text="hello", at=clock(), session=session)
            session.commit()
        leading = False
        wake = asyncio.Event()
        worker = asyncio.create_task(delivery.run(wake, idle=0.02, leading=lambda: leading))
        await asyncio.sleep(0.15)
        assert slack.posts() == []
        leading = True
        wake.set()
        for _ in range(100):
            if slack.posts():
                break
            await asyncio.sleep(0.02)
        worker.cancel()
        assert [p["text"] for p in slack.posts()] == ["hello"]
    finally:
        await slack.stop()


# ---------------------------------------------------------------- two replicas in one process


class Replica:
    def __init__(self, name: str, url: str, slack: FakeSlack, policy: Policy) -> None:
        self.name = name
        self.slack = slack
        self.engine = make_engine(url)
        self.runtime = Runtime(
            settings=service_settings(slack, url),
            engine=self.engine,
            policy=policy,
            clock=system_clock,
        )
        # Short real times: the other replica takes over within a second of a death.
        self.runtime.leadership = Leadership(
            self.engine,
            holder=name,
            ttl=timedelta(seconds=0.9),
            renew_every=timedelta(seconds=0.1),
        )
        self.runner: web.AppRunner | None = None

    @property
    def leadership(self) -> Leadership:
        assert self.runtime.leadership is not None
        return self.runtime.leadership

    async def start(self) -> None:
        from bot.http.app import create_app

        client = AsyncWebClient(token=BOT_TOKEN, base_url=self.slack.api_url)
        app = create_app(self.runtime, client=client, background=True)
        self.runner = web.AppRunner(app)
        await self.runner.setup()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self.engine.dispose()


@pytest.fixture
async def slacks() -> AsyncIterator[tuple[FakeSlack, FakeSlack]]:
    a, b = await FakeSlack().start(), await FakeSlack().start()
    yield a, b
    await a.stop()
    await b.stop()


async def wait_for(condition: Callable[[], bool], *, within: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_two_runtimes_on_one_sqlite_file_one_posts_then_the_other_takes_over(
    tmp_path: Path, slacks: tuple[FakeSlack, FakeSlack], policy: Policy
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    setup = make_engine(url)
    create_schema(setup)
    a = Replica("a", url, slacks[0], policy)
    b = Replica("b", url, slacks[1], policy)
    await a.start()
    await b.start()
    try:
        assert a.leadership.leading
        assert not b.leadership.leading

        def post(text: str) -> None:
            with Session(setup) as session:
                enqueue_post(channel="C0ROLLOUTS", text=text, at=datetime.now(UTC), session=session)
                session.commit()

        post("first")
        assert await wait_for(lambda: len(slacks[0].posts()) == 1)
        await asyncio.sleep(0.3)
        assert slacks[1].posts() == []

        # a stops (its cleanup resigns the lease); b takes over and delivers what is queued.
        await a.stop()
        post("second")
        assert await wait_for(lambda: b.leadership.leading)
        assert await wait_for(lambda: len(slacks[1].posts()) == 1)
        assert [p["text"] for p in slacks[1].posts()] == ["second"]
        assert [p["text"] for p in slacks[0].posts()] == ["first"]

        def all_settled() -> bool:
            with Session(setup) as session:
                return pending_posts(session=session) == []

        # Slack sees the post a moment before the worker records it as sent.
        assert await wait_for(all_settled)
    finally:
        await a.stop()
        await b.stop()
        setup.dispose()
