"""Two real `wavegate serve` processes on one PostgreSQL: only the leader polls the metric
backend and posts to Slack; when it is killed, its lease expires and the other takes over
within 2 renewal intervals; when it is frozen (SIGSTOP) past its lease and wakes, it sends
nothing more: no post twice, no older status message over a newer one.

The renewal is shortened to 1 s (lease 1.5 s) so the take-over fits in a test; everything else
is the shipped `wavegate serve`. Both replicas talk to ONE fake Slack, each through its own
URL, so calls say who made them and client_msg_id de-duplication spans both. Needs
TEST_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from commands.core import Context
from commands.policy_file import parse_policy
from commands.ready.checklist import register_release
from storage.db import make_engine
from storage.outbox import enqueue_post, mark_sent, pending_posts
from tests.conftest import PG_SKIP, PG_URL, create_schema
from tests.support.paths import ROOT
from tests.support.prometheus import FakePrometheus, closed_port_url, empty
from tests.support.serve import serve_env
from tests.support.slack import FakeSlack

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason=PG_SKIP),
]

RENEW_EVERY = 1.0
LEASE_TTL = 1.5
SERVE = (
    "from datetime import timedelta\n"
    "import bot.leader\n"
    f"bot.leader.LEASE_TTL = timedelta(seconds={LEASE_TTL})\n"
    f"bot.leader.RENEW_EVERY = timedelta(seconds={RENEW_EVERY})\n"
    "from bot.cli import main\n"
    "raise SystemExit(main(['serve']))\n"
)
QUERY = 'sum(rate(http_requests_total{path="api",release="{release}"}[{window}]))'


def policy_text(replica: str, prom_url: str) -> str:
    """The replicas' policies differ only in a header their Prometheus requests carry, so the
    fake can tell who polled."""
    document = {
        "version": 1,
        "channels": {"rollouts": "C0ROLLOUTS"},
        "checklist": [
            {
                "id": "observability",
                "title": "Observability",
                "verify": {"by": "metric", "metrics": ["api_request_rate"]},
            }
        ],
        "sources": {
            "prom": {"type": "prometheus", "url": prom_url, "headers": {"X-Replica": replica}}
        },
        "metrics": [
            {
                "id": "api_request_rate",
                "source": "prom",
                "query": QUERY,
                "success": "> 0",
                "interval": "1s",
            }
        ],
    }
    text = yaml.safe_dump(document)
    parse_policy(text)  # a broken test policy should fail here, not inside a subprocess
    return text


class Replica:
    def __init__(
        self, name: str, tmp: Path, prom: FakePrometheus, slack: FakeSlack, database_url: str
    ) -> None:
        self.name = name
        self.slack = slack
        self.port = int(closed_port_url().rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        policy = tmp / f"policy-{name}.yml"
        policy.write_text(policy_text(name, prom.url))
        self.log = tmp / f"replica-{name}.log"
        self.env = serve_env(
            slack,
            database=database_url,
            port=self.port,
            SLACK_API_URL=slack.via_url(name),  # so the fake Slack can tell who called
            WAVEGATE_POLICY=str(policy),
            LOG_LEVEL="INFO",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no resignation; only expiry frees the lease."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    async def leading(self, http: aiohttp.ClientSession) -> bool | None:
        """What the replica's own /metrics says (None while it is not up)."""
        try:
            async with http.get(f"{self.url}/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return None
        for family in text_string_to_metric_families(text):
            if family.name == "wavegate_leader":
                return family.samples[0].value == 1
        return None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


async def eventually(
    check: Callable[[], object],
    *,
    within: float,
    what: str,
    logs: Callable[[], str] | None = None,
) -> float:
    """Wait (bounded) until `check()` (sync or async) is truthy; returns the seconds it took.
    On a timeout the failure carries `logs()`, what the replicas printed."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    detail = f"\n{logs()}" if logs is not None else ""
    raise AssertionError(f"not within {within}s: {what}{detail}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A database of its own on the TEST_DATABASE_URL server: the replicas run for seconds,
    and other test runs reset the shared one."""
    assert PG_URL
    name = f"wavegate_leader_{os.getpid()}"
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield str(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakePrometheus, FakeSlack]]:
    prom = await FakePrometheus().start()
    prom.default = empty()  # never verified, so the leader keeps polling every second
    slack = await FakeSlack().start()
    yield prom, slack
    await prom.stop()
    await slack.stop()


def posts_via(slack: FakeSlack, replica: str) -> list[str]:
    return [c.args["text"] for c in slack.accepted() if c.via == replica]


def seed(pg_engine: Engine, prom: FakePrometheus) -> None:
    with Session(pg_engine) as session:
        # The replicas run on the real clock, so the seed does too: a post stamped by a fixed
        # fake clock would become due, or not, depending on the time of day the test runs.
        ctx = Context(
            session=session,
            policy=parse_policy(policy_text("x", prom.url)),
            clock=lambda: datetime.now(UTC),
        )
        register_release("1.0", ctx, actor="U0RM1")
        # Only the posts queued below count: the registration's announcement is out already.
        for seeded in pending_posts(session=session):
            mark_sent(seeded, at=ctx.now(), session=session)
        session.commit()


def polls_by(prom: FakePrometheus, replica: str) -> int:
    return sum(1 for call in prom.calls if call.headers.get("X-Replica") == replica)


async def test_only_the_leader_polls_and_posts_and_the_other_takes_over_when_it_dies(
    pg_url: str,
    pg_engine: Engine,
    fakes: tuple[FakePrometheus, FakeSlack],
    tmp_path: Path,
) -> None:
    prom, slack = fakes
    seed(pg_engine, prom)

    def post(text: str) -> None:
        with Session(pg_engine) as session:
            enqueue_post(channel="C0ROLLOUTS", text=text, at=datetime.now(UTC), session=session)
            session.commit()

    a = Replica("a", tmp_path, prom, slack, pg_url)
    b = Replica("b", tmp_path, prom, slack, pg_url)
    async with aiohttp.ClientSession() as http:
        try:
            a.start()
            await eventually(lambda: a.leading(http), within=30, what="a up and leading")
            b.start()
            await eventually(lambda: _is(b.leading(http), False), within=30, what="b up, following")

            # Both run; for a few seconds only a polls and only a posts.
            post("from the leader")
            await asyncio.sleep(3)
            assert polls_by(prom, "a") >= 2, a.output()
            assert polls_by(prom, "b") == 0, b.output()
            assert posts_via(slack, "a") == ["from the leader"]
            assert posts_via(slack, "b") == []
            assert await a.leading(http) is True
            assert await b.leading(http) is False

            # The leader dies without a word; its lease must expire before b takes over, and
            # b takes over within two renewal intervals of the death.
            a.kill()
            killed_at_polls = polls_by(prom, "a")
            post("after the take-over")
            took = await eventually(
                lambda: b.leading(http), within=LEASE_TTL + 10, what="b takes over"
            )
            print(
                f"\ntake-over after kill -9: {took:.2f}s "
                f"(renewal {RENEW_EVERY}s, lease {LEASE_TTL}s)"
            )
            assert took >= LEASE_TTL / 3, "b took over before a's lease could have expired"
            # Measured by polling /metrics every 0.1 s, so allow for the polling itself.
            assert took <= 2 * RENEW_EVERY + 0.5, b.output()
            await eventually(lambda: polls_by(prom, "b") >= 2, within=10, what="b polls")
            await eventually(lambda: posts_via(slack, "b"), within=10, what="b posts")
            assert posts_via(slack, "b") == ["after the take-over"]
            assert polls_by(prom, "a") == killed_at_polls
            assert posts_via(slack, "a") == ["from the leader"]
        finally:
            a.kill()
            b.stop()


async def test_a_leader_frozen_past_its_lease_wakes_and_sends_nothing(
    pg_url: str,
    pg_engine: Engine,
    fakes: tuple[FakePrometheus, FakeSlack],
    tmp_path: Path,
) -> None:
    """The issue's SIGSTOP: 22 s of freeze made the old leader deliver 6-10 more calls,
    duplicating posts and rewinding status messages. Here posts flow the whole time."""
    prom, slack = fakes
    slack.delay = 0.02  # the leader spends its time waiting on Slack, as it does for real
    seed(pg_engine, prom)
    a = Replica("a", tmp_path, prom, slack, pg_url)
    b = Replica("b", tmp_path, prom, slack, pg_url)
    sent: list[str] = []

    async def feed(stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with Session(pg_engine) as session:
                now = datetime.now(UTC)
                enqueue_post(
                    channel="C0ROLLOUTS",
                    text=f"status v{n}",
                    at=now,
                    message_key="rollout:1",
                    session=session,
                )
                enqueue_post(
                    channel="C0ROLLOUTS",
                    text=f"event {n}",
                    at=now,
                    thread_key="rollout:1",
                    session=session,
                )
                enqueue_post(channel="C0ROLLOUTS", text=f"loose {n}", at=now, session=session)
                session.commit()
            sent.extend([f"event {n}", f"loose {n}"])
            await asyncio.sleep(0.05)

    async with aiohttp.ClientSession() as http:
        stop = asyncio.Event()
        feeder: asyncio.Task[None] | None = None
        try:
            a.start()
            await eventually(lambda: a.leading(http), within=30, what="a up and leading")
            b.start()
            await eventually(lambda: _is(b.leading(http), False), within=30, what="b up, following")
            feeder = asyncio.create_task(feed(stop))
            await eventually(lambda: len(posts_via(slack, "a")) >= 10, within=10, what="a posts")
            a.freeze()
            await eventually(
                lambda: posts_via(slack, "b"),
                within=10,
                what="b takes over",
                logs=lambda: f"--- a\n{a.output()}\n--- b\n{b.output()}",
            )
            await asyncio.sleep(LEASE_TTL + 1)
            a.thaw()
            woke = time.monotonic()
            await asyncio.sleep(2)  # a is awake; posts keep coming
            stop.set()
            await feeder

            def settled() -> bool:
                with Session(pg_engine) as session:
                    return pending_posts(session=session) == []

            await eventually(settled, within=30, what="every post delivered")
            accepted = [c.args["text"] for c in slack.accepted()]
            # Every post exactly once, across both replicas.
            delivered = [t for t in accepted if not t.startswith("status")]
            assert sorted(delivered) == sorted(sent)
            # The status message only ever moves forward.
            versions = [
                int(str(c.args["text"]).removeprefix("status v"))
                for c in slack.accepted("chat.update")
            ]
            assert versions == sorted(versions)
            late = [c for c in slack.calls if c.via == "a" and c.at > woke]
            assert late == [], a.output()
            assert await a.leading(http) is False
            duplicates = sum(1 for c in slack.calls if c.duplicate)
            print(f"\nSIGSTOP: {len(accepted)} accepted, {duplicates} re-sends de-duplicated")
        finally:
            stop.set()
            if feeder is not None:
                await asyncio.gather(feeder, return_exceptions=True)
            a.thaw()
            a.kill()
            b.stop()


async def _is(value: object, expected: object) -> bool:
    if asyncio.iscoroutine(value):
        value = await value
    return value is expected
