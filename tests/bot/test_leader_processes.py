"""Two real `wavegate serve` processes on one PostgreSQL: only the leader polls the metric
backend and posts to Slack; when it is killed, its lease expires and the other takes over.

The lease is shortened to 2 s (renewed every 0.5 s) so the take-over fits in a test; everything
else is the shipped `wavegate serve`. Needs TEST_DATABASE_URL.
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
from tests.support.signing import SIGNING_SECRET
from tests.support.slack import BOT_TOKEN, FakeSlack

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason=PG_SKIP),
]

LEASE_TTL = 2.0
SERVE = (
    "from datetime import timedelta\n"
    "import bot.leader\n"
    f"bot.leader.LEASE_TTL = timedelta(seconds={LEASE_TTL})\n"
    "bot.leader.RENEW_EVERY = timedelta(seconds=0.5)\n"
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
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WAVEGATE_"))},
            "DATABASE_URL": database_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "WAVEGATE_POLICY": str(policy),
            "PORT": str(self.port),
            "LOG_LEVEL": "INFO",
        }
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


async def eventually(check: Callable[[], object], *, within: float, what: str) -> float:
    """Wait (bounded) until `check()` (sync or async) is truthy; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within}s: {what}")


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
async def fakes() -> AsyncIterator[tuple[FakePrometheus, FakeSlack, FakeSlack]]:
    prom = await FakePrometheus().start()
    prom.default = empty()  # never verified, so the leader keeps polling every second
    slack_a, slack_b = await FakeSlack().start(), await FakeSlack().start()
    yield prom, slack_a, slack_b
    await prom.stop()
    await slack_a.stop()
    await slack_b.stop()


def polls_by(prom: FakePrometheus, replica: str) -> int:
    return sum(1 for call in prom.calls if call.headers.get("X-Replica") == replica)


async def test_only_the_leader_polls_and_posts_and_the_other_takes_over_when_it_dies(
    pg_url: str,
    pg_engine: Engine,
    fakes: tuple[FakePrometheus, FakeSlack, FakeSlack],
    tmp_path: Path,
) -> None:
    prom, slack_a, slack_b = fakes
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

    def post(text: str) -> None:
        with Session(pg_engine) as session:
            enqueue_post(channel="C0ROLLOUTS", text=text, at=datetime.now(UTC), session=session)
            session.commit()

    a = Replica("a", tmp_path, prom, slack_a, pg_url)
    b = Replica("b", tmp_path, prom, slack_b, pg_url)
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
            assert [p["text"] for p in slack_a.posts()] == ["from the leader"]
            assert slack_b.posts() == []
            assert await a.leading(http) is True
            assert await b.leading(http) is False

            # The leader dies without a word; its lease must expire before b takes over.
            a.kill()
            killed_at_polls = polls_by(prom, "a")
            post("after the take-over")
            took = await eventually(
                lambda: b.leading(http), within=LEASE_TTL + 10, what="b takes over"
            )
            assert took >= LEASE_TTL / 2, "b took over before a's lease could have expired"
            await eventually(lambda: polls_by(prom, "b") >= 2, within=10, what="b polls")
            await eventually(lambda: slack_b.posts(), within=10, what="b posts")
            assert [p["text"] for p in slack_b.posts()] == ["after the take-over"]
            assert polls_by(prom, "a") == killed_at_polls
            assert [p["text"] for p in slack_a.posts()] == ["from the leader"]
        finally:
            a.kill()
            b.stop()


async def _is(value: object, expected: object) -> bool:
    if asyncio.iscoroutine(value):
        value = await value
    return value is expected
