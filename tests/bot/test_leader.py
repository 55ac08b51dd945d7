"""One leader among replicas: the lease on SQLite and PostgreSQL, the Leadership that renews it,
and the scheduler and outbox doing their work only where it leads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.jobs.job import leader_only
from bot.jobs.scheduler import build_scheduler
from bot.leader import Leadership
from bot.outbox import OutboxDelivery
from bot.runtime import Runtime
from bot.settings import Settings
from commands.core import system_clock
from commands.policy import Policy
from storage.db import make_engine
from storage.lease import acquire_lease, lease_holder, release_lease
from storage.outbox import enqueue_post, pending_posts
from tests.conftest import create_schema, service_settings
from tests.support.clock import FakeClock
from tests.support.slack import BOT_TOKEN, FakeSlack

TTL = timedelta(seconds=30)
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def take(engine: Engine, holder: str, now: datetime, ttl: timedelta = TTL) -> bool:
    with Session(engine) as session:
        return acquire_lease("scheduler", holder=holder, ttl=ttl, now=now, session=session)


def holder(engine: Engine, now: datetime) -> str | None:
    with Session(engine) as session:
        return lease_holder("scheduler", now=now, session=session)


# ---------------------------------------------------------------- the lease


def test_first_taker_holds_the_lease_and_others_are_refused(any_engine: Engine) -> None:
    assert take(any_engine, "a", T0)
    assert not take(any_engine, "b", T0 + timedelta(seconds=1))
    assert holder(any_engine, T0 + timedelta(seconds=1)) == "a"


def test_holder_renews_and_pushes_expiry_out(any_engine: Engine) -> None:
    assert take(any_engine, "a", T0)
    assert take(any_engine, "a", T0 + timedelta(seconds=20))
    # Past the first expiry, but within the renewed one: still a's.
    assert not take(any_engine, "b", T0 + timedelta(seconds=40))
    assert holder(any_engine, T0 + timedelta(seconds=40)) == "a"


def test_expired_lease_is_taken_over(any_engine: Engine) -> None:
    assert take(any_engine, "a", T0)
    later = T0 + TTL + timedelta(seconds=1)
    assert holder(any_engine, later) is None
    assert take(any_engine, "b", later)
    assert holder(any_engine, later) == "b"
    # The old holder coming back finds it taken.
    assert not take(any_engine, "a", later + timedelta(seconds=1))


def test_release_hands_over_at_once_and_only_by_the_holder(any_engine: Engine) -> None:
    assert take(any_engine, "a", T0)
    with Session(any_engine) as session:
        assert not release_lease("scheduler", holder="b", now=T0, session=session)
        assert release_lease("scheduler", holder="a", now=T0, session=session)
    assert take(any_engine, "b", T0 + timedelta(milliseconds=1))


def test_racing_replicas_elect_exactly_one(any_engine: Engine) -> None:
    """Eight threads (eight connections) try at once, on an empty table and then on an expired
    row: each time exactly one wins."""
    for round_start in (T0, T0 + TTL * 2):
        assert race(any_engine, round_start, contenders=8) == 1
    assert holder(any_engine, T0 + TTL * 2) is not None


def race(engine: Engine, now: datetime, *, contenders: int) -> int:
    barrier = threading.Barrier(contenders)
    wins: list[str] = []

    def contend(name: str) -> None:
        barrier.wait()
        if take(engine, name, now):
            wins.append(name)

    threads = [threading.Thread(target=contend, args=(f"r{i}",)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert holder(engine, now) in wins
    return len(wins)


# ---------------------------------------------------------------- Leadership


async def test_leadership_follows_the_lease_with_an_injected_clock(engine: Engine) -> None:
    clock = FakeClock()
    elected: list[str] = []
    a = Leadership(engine, clock, holder="a", ttl=TTL, on_elected=lambda: elected.append("a"))
    b = Leadership(engine, clock, holder="b", ttl=TTL, on_elected=lambda: elected.append("b"))
    assert await a.renew()
    assert not await b.renew()
    assert (a.leading, b.leading) == (True, False)
    assert a.current_holder() == "a"
    # a stops renewing (it died). Before the lease can expire a already counts itself out...
    clock.advance(TTL - a.renew_every + timedelta(seconds=1))
    assert not a.leading
    assert not await b.renew()  # ...while the lease itself has not yet expired.
    clock.advance(a.renew_every)
    assert await b.renew()
    assert b.leading
    assert not await a.renew()
    assert elected == ["a", "b"]


async def test_resign_lets_the_other_take_over_without_waiting(engine: Engine) -> None:
    clock = FakeClock()
    a = Leadership(engine, clock, holder="a", ttl=TTL)
    b = Leadership(engine, clock, holder="b", ttl=TTL)
    await a.renew()
    await a.resign()
    assert not a.leading
    clock.advance(seconds=0.001)
    assert await b.renew()


async def test_jobs_run_only_where_this_process_leads(engine: Engine, policy: Policy) -> None:
    runtime = Runtime(settings=Settings(), engine=engine, policy=policy)
    ran: list[str] = []

    async def job(runtime: Runtime) -> None:
        ran.append("ran")

    guarded = leader_only(job)
    await guarded(runtime)  # no Leadership: a lone process leads
    assert runtime.leads()
    clock = FakeClock()
    rival = Leadership(engine, clock, holder="rival", ttl=TTL)
    await rival.renew()
    runtime.leadership = Leadership(engine, clock, holder="me", ttl=TTL)
    await runtime.leadership.renew()
    await guarded(runtime)
    assert ran == ["ran"]
    # Every job the scheduler registers is guarded the same way.
    scheduler = build_scheduler(runtime)
    for scheduled in scheduler.get_jobs():
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
            system_clock,
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

        def nothing_pending() -> bool:
            # Slack has the post a moment before the leader's "sent" mark is committed.
            with Session(setup) as session:
                return pending_posts(session=session) == []

        assert await wait_for(nothing_pending)
    finally:
        await a.stop()
        await b.stop()
        setup.dispose()
