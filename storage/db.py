"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.versions import track_writes

MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the only PostgreSQL driver we install)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# The pool and its timeouts (DESIGN §10). No unit of work holds a connection across an await:
# claims and settles are short transactions and the network is awaited between them. So the
# connections checked out at once are bounded by the threads doing database work, not by the
# commands in flight (50 commands waiting on a slow deploy system hold none): the work loop's
# thread, where every unit of work runs (bot/work.py), one at a time; the HTTP loop's thread
# (the commands answered in the ack, a form's check); and the default executor's threads
# (min(32, cores + 4): the lease renewal, /metrics, /readyz, the nightly roll-up), usually one
# or two at once. POOL_SIZE covers the steady state (work loop, HTTP loop, lease, a scrape and
# one spare) without opening connections per request; POOL_OVERFLOW lets every executor thread
# hold one as well in a burst. A checkout that has to wait beyond that means something holds a
# connection across an await: it fails within POOL_TIMEOUT (blocking only the thread that
# asked) instead of freezing a loop for SQLAlchemy's default 30 s.
POOL_SIZE = 5
POOL_OVERFLOW = 10
POOL_TIMEOUT = 5.0
# Recycled before PostgreSQL or a proxy (PgBouncer, a cloud load balancer) drops idle ones.
POOL_RECYCLE = 1800
# How long SQLite waits for another writer's lock: another process (the CLI's `db upgrade`), or
# in this one the few writes that are not on the work loop's thread (the lease renewal, the
# commands answered in the ack, the nightly roll-up). No transaction spans an await, so a wait
# lasts one short transaction; it blocks the waiting thread, so it is kept short.
SQLITE_BUSY_MS = 5000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine whose writes are counted per table (storage/versions.py), so kept answers
    know when they are stale."""
    engine = _engine(url, **kwargs)
    track_writes(engine)
    return engine


def _engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000},
            **kwargs,
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if ":memory:" not in url and url != "sqlite://":
                cursor.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the
                # process loses nothing (only a power cut can lose the last commits), and a
                # commit no longer waits for the disk while it holds the event loop.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cursor.close()

        return engine
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": POOL_SIZE,
        "max_overflow": POOL_OVERFLOW,
        "pool_timeout": POOL_TIMEOUT,
        "pool_recycle": POOL_RECYCLE,
        # A connection attempt to a database that does not answer fails fast too.
        "connect_args": {"connect_timeout": 5},
        **kwargs,
    }
    return sa.create_engine(url, **options)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def core_connection(session: Session) -> sa.Connection:
    """The connection of `session`'s transaction, for Core statements (no ORM compile or entity
    cost), after flushing what the session holds so the statement sees it, as an ORM query
    would."""
    session.flush()
    return session.connection()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def head_revision() -> str | None:
    script = ScriptDirectory(str(MIGRATIONS))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
