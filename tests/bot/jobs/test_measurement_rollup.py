"""The daily roll-up job on SQLite and PostgreSQL: batch after batch until nothing is due."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

import bot.jobs.retention
from bot.jobs.retention import roll_up
from bot.jobs.scheduler import build_scheduler
from bot.runtime import Runtime
from bot.settings import Settings
from commands.policy import Policy
from storage.measurements import add_measurement
from storage.models import RolloutState
from tests.commands.analysis.test_retention import NOW, add_rollout
from tests.support.clock import FakeClock


def count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


async def test_the_job_rolls_up_every_due_metric_in_batches(
    any_engine: Engine, policy: Policy, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.jobs.retention, "BATCH", 3)
    with Session(any_engine) as session:
        done = add_rollout(session, "1.0", RolloutState.complete, 2)
        running = add_rollout(session, "2.0", RolloutState.running, 0)
        for wave in range(3):
            for metric in ("a", "b", "c"):
                for minutes in range(4):
                    add_measurement(
                        rollout_id=done,
                        wave_index=wave,
                        metric=metric,
                        phase="successful",
                        value=float(minutes),
                        detail="",
                        at=NOW - timedelta(days=30, minutes=minutes),
                        session=session,
                    )
        add_measurement(
            rollout_id=running,
            wave_index=0,
            metric="a",
            phase="successful",
            value=1.0,
            detail="",
            at=NOW - timedelta(days=30),
            session=session,
        )
        session.commit()
    runtime = Runtime(
        settings=Settings(database_url=database_url),
        engine=any_engine,
        policy=policy,
        clock=FakeClock(NOW),
    )

    await roll_up(runtime)

    assert count(any_engine, "measurement_summary") == 9  # three batches of three
    assert count(any_engine, "measurement") == 1  # the running rollout's current wave


def test_the_rollup_is_a_scheduled_job(policy: Policy, engine: Engine, sqlite_url: str) -> None:
    runtime = Runtime(settings=Settings(database_url=sqlite_url), engine=engine, policy=policy)
    job = build_scheduler(runtime).get_job("measurement-rollup")
    assert job is not None
    assert "hour='3'" in str(job.trigger)
