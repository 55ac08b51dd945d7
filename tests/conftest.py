"""Shared fixtures: databases (SQLite always, PostgreSQL where TEST_DATABASE_URL is set), a
settable clock, the policy, a command context, a fake Slack on loopback and the service itself."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from alembic import command
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.http.app import create_app
from bot.http.keys import DELIVERY
from bot.outbox import OutboxDelivery
from bot.runtime import Runtime
from bot.settings import Settings
from bot.sources.http import SourceHttp
from commands.core import Context, Reply, Request
from commands.policy import Policy
from commands.policy_file import builtin_policy
from commands.router import dispatch
from storage.db import alembic_config, make_engine
from storage.schema import metadata
from tests.support.clock import FakeClock
from tests.support.prometheus import FakeJsonSource, FakePrometheus
from tests.support.signing import SIGNING_SECRET, signed_headers, slash_body
from tests.support.slack import BOT_TOKEN, FakeSlack

PG_URL = os.environ.get("TEST_DATABASE_URL")
PG_SKIP = "TEST_DATABASE_URL is not set: PostgreSQL tests skipped (CI sets it)"

ROLLOUTS = "C0ROLLOUTS"
INCIDENTS = "C0INCIDENTS"
MANAGER = "U0RM1"
COMMANDER = "U0IC1"
DEVELOPER = "U0DEV1"


def reset_postgres(url: str) -> Engine:
    """A clean public schema, so each PostgreSQL test starts from nothing."""
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    return engine


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'wavegate.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """Runs the test once on SQLite and once on PostgreSQL (skipped without TEST_DATABASE_URL)."""
    if request.param == "sqlite":
        return sqlite_url
    if not PG_URL:
        pytest.skip(PG_SKIP)
    reset_postgres(PG_URL).dispose()
    return PG_URL


def create_schema(engine: Engine) -> None:
    """Tables straight from the models, stamped at the migrations' head. Quicker than running
    the migrations each time; tests/test_migrations.py proves the two give the same schema."""
    metadata.create_all(engine)
    command.stamp(alembic_config(engine), "head")


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    """SQLite with the whole schema: most tests."""
    engine = make_engine(sqlite_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def any_engine(database_url: str) -> Iterator[Engine]:
    """The whole schema, on SQLite and on PostgreSQL."""
    engine = make_engine(database_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def with_channels(policy: Policy) -> Policy:
    channels = policy.channels.model_copy(update={"rollouts": ROLLOUTS, "incidents": INCIDENTS})
    roles = {"release-managers": [MANAGER], "incident-commanders": [COMMANDER]}
    return policy.model_copy(update={"channels": channels, "roles": roles})


@pytest.fixture
def policy() -> Policy:
    """The built-in blueprint, with channels and real-looking role members."""
    return with_channels(builtin_policy())


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def ctx(session: Session, policy: Policy, clock: FakeClock) -> Context:
    return Context(session=session, policy=policy, clock=clock)


async def run(ctx: Context, line: str, *, user: str = MANAGER) -> Reply:
    """Type a command as `user`: `/ready new 1.0` or `/ops ready`."""
    command, _, text = line.partition(" ")
    return await dispatch(Request(command=command, text=text, user_id=user), ctx)


# ---------------------------------------------------------------- full flow over HTTP


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def prom() -> AsyncIterator[FakePrometheus]:
    """A fake Prometheus on loopback (tests/support/prometheus.py)."""
    fake = await FakePrometheus().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def json_fake() -> AsyncIterator[FakeJsonSource]:
    """A fake HTTP JSON metric source on loopback."""
    fake = await FakeJsonSource().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[SourceHttp]:
    """The one aiohttp session and concurrency limit metric sources share."""
    shared = SourceHttp(concurrency=8)
    yield shared
    await shared.close()


@dataclass
class Service:
    """The real aiohttp app with Bolt, on loopback, talking to the fake Slack."""

    url: str
    runtime: Runtime
    app: web.Application
    slack: FakeSlack
    http: aiohttp.ClientSession

    async def command(
        self,
        command: str,
        text: str = "",
        *,
        user: str = MANAGER,
        channel: str = "C0WORK",
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
    ) -> aiohttp.ClientResponse:
        body = slash_body(
            command,
            text,
            user_id=user,
            channel_id=channel,
            response_url=self.slack.response_url(),
        )
        headers = signed_headers(body, secret=secret, timestamp=timestamp)
        return await self.http.post(f"{self.url}/slack/events", data=body, headers=headers)

    async def post_signed(self, body: str, **kwargs: object) -> aiohttp.ClientResponse:
        headers = signed_headers(body, **kwargs)  # type: ignore[arg-type]
        return await self.http.post(f"{self.url}/slack/events", data=body, headers=headers)

    @property
    def delivery(self) -> OutboxDelivery:
        return self.app[DELIVERY]


def service_settings(slack: FakeSlack, database_url: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "database_url": database_url,
        "wavegate_api_token": "test-api-token",
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


async def start_service(
    runtime: Runtime, slack: FakeSlack, *, background: bool = False
) -> tuple[web.AppRunner, Service]:
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    app = create_app(runtime, client=client, background=background)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    http = aiohttp.ClientSession()
    return runner, Service(f"http://127.0.0.1:{port}", runtime, app, slack, http)


@pytest.fixture
async def service(
    slack: FakeSlack, engine: Engine, policy: Policy, clock: FakeClock, sqlite_url: str
) -> AsyncIterator[Service]:
    runtime = Runtime(
        settings=service_settings(slack, sqlite_url), engine=engine, policy=policy, clock=clock
    )
    runner, svc = await start_service(runtime, slack)
    yield svc
    await svc.http.close()
    await runner.cleanup()


@pytest.fixture
async def any_service(
    slack: FakeSlack, any_engine: Engine, policy: Policy, clock: FakeClock, database_url: str
) -> AsyncIterator[Service]:
    """The real app on loopback, on SQLite and on PostgreSQL (where TEST_DATABASE_URL is set)."""
    runtime = Runtime(
        settings=service_settings(slack, database_url),
        engine=any_engine,
        policy=policy,
        clock=clock,
    )
    runner, svc = await start_service(runtime, slack)
    yield svc
    await svc.http.close()
    await runner.cleanup()
