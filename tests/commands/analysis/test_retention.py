"""Measurement retention on SQLite and PostgreSQL: old raw polls of finished waves rolled up into
summaries equal to what the raw polls gave; the polls of active waves and recent ones kept."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from commands.analysis.retention import roll_up_measurements
from commands.core import Context
from commands.policy import Policy, Retention
from storage.measurements import add_measurement
from storage.models import (
    AuditEvent,
    Measurement,
    MeasurementSummary,
    Release,
    ReleaseState,
    Rollout,
    RolloutState,
)
from tests.conftest import run
from tests.support.clock import FakeClock

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PHASES = ["successful", "successful", "successful", "failed", "inconclusive", "error"]
Key = tuple[int, int, str]


def add_rollout(session: Session, version: str, state: RolloutState, wave_index: int) -> int:
    release = Release(
        version=version, state=ReleaseState.rolling_out, created_by="U0RM1", created_at=NOW
    )
    session.add(release)
    session.flush()
    assert release.id is not None
    rollout = Rollout(
        release_id=release.id,
        plan="default",
        state=state,
        wave_index=wave_index,
        wave_started_at=NOW,
        started_by="U0RM1",
        started_at=NOW,
    )
    session.add(rollout)
    session.flush()
    assert rollout.id is not None
    return rollout.id


@dataclass
class Seeded:
    polls: dict[Key, list[tuple[str, float | None, datetime]]]


def seed_polls(
    session: Session, seeded: Seeded, key: Key, *, newest: datetime, count: int, rng: random.Random
) -> None:
    rollout_id, wave_index, metric = key
    for index in range(count):
        phase = rng.choice(PHASES)
        value = None if phase == "error" else round(rng.uniform(0.5, 1.5), 6)
        at = newest - timedelta(minutes=count - 1 - index)
        add_measurement(
            rollout_id=rollout_id,
            wave_index=wave_index,
            metric=metric,
            phase=phase,
            value=value,
            detail="q",
            at=at,
            session=session,
        )
        seeded.polls.setdefault(key, []).append((phase, value, at))


def raw_keys(session: Session) -> Counter[Key]:
    rows = session.exec(select(Measurement.rollout_id, Measurement.wave_index, Measurement.metric))
    return Counter((r, w, m) for r, w, m in rows)


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def test_old_polls_of_finished_waves_become_exact_summaries(
    any_engine: Engine, policy: Policy
) -> None:
    rng = random.Random(13)
    seeded = Seeded({})
    old = NOW - timedelta(days=15)
    recent = NOW - timedelta(days=3)
    with Session(any_engine, expire_on_commit=False) as session:
        done = add_rollout(session, "1.0", RolloutState.complete, 1)
        running = add_rollout(session, "2.0", RolloutState.running, 1)
        paused = add_rollout(session, "3.0", RolloutState.paused, 0)
        late = add_rollout(session, "4.0", RolloutState.rolled_back, 0)
        rolled = [(done, 0, "latency"), (done, 0, "errors"), (done, 1, "latency")]
        rolled.append((running, 0, "latency"))  # an earlier wave of a running rollout
        for key in rolled:
            seed_polls(session, seeded, key, newest=old, count=rng.randint(1, 60), rng=rng)
        kept = [(running, 1, "latency"), (paused, 0, "errors")]  # active waves, however old
        for key in kept:
            seed_polls(session, seeded, key, newest=old, count=20, rng=rng)
        # Finished, but its last poll is within the retention: kept raw, older polls too.
        kept.append((late, 0, "latency"))
        seed_polls(session, seeded, kept[-1], newest=recent, count=30, rng=rng)
        session.add(
            Measurement(
                rollout_id=late,
                wave_index=0,
                metric="latency",
                phase="successful",
                value=1.0,
                taken_at=old,
            )
        )
        seeded.polls[kept[-1]].append(("successful", 1.0, old))
        session.commit()

    with Session(any_engine, expire_on_commit=False) as session:
        ctx = Context(session=session, policy=policy, clock=FakeClock(NOW))
        result = roll_up_measurements(ctx)
        session.commit()
        assert result.summaries == len(rolled)
        assert result.deleted == sum(len(seeded.polls[k]) for k in rolled)

    with Session(any_engine) as session:
        remaining = raw_keys(session)
        assert set(remaining) == set(kept)
        for key in kept:
            assert remaining[key] == len(seeded.polls[key])
        summaries = {
            (s.rollout_id, s.wave_index, s.metric): s
            for s in session.exec(select(MeasurementSummary))
        }
    assert set(summaries) == set(rolled)
    for key in rolled:
        polls = seeded.polls[key]
        summary = summaries[key]
        values = sorted(v for _, v, _ in polls if v is not None)
        phases = Counter(p for p, _, _ in polls)
        assert summary.polls == len(polls)
        assert (summary.successful, summary.failed) == (phases["successful"], phases["failed"])
        assert (summary.inconclusive, summary.error) == (phases["inconclusive"], phases["error"])
        assert summary.valued == len(values)
        assert summary.first_at == min(at for _, _, at in polls)
        assert summary.last_at == max(at for _, _, at in polls)
        if not values:
            assert (summary.min, summary.max, summary.mean, summary.p50) == (None,) * 4
            continue
        assert close(summary.min, values[0])
        assert close(summary.max, values[-1])
        assert close(summary.mean, statistics.fmean(values))
        if len(values) == 1:
            assert close(summary.p50, values[0])
            assert close(summary.p95, values[0])
        else:
            cuts = statistics.quantiles(values, n=100, method="inclusive")
            assert close(summary.p50, cuts[49])
            assert close(summary.p95, cuts[94])


def test_a_second_run_changes_nothing_and_the_retention_comes_from_the_policy(
    any_engine: Engine, policy: Policy
) -> None:
    rng = random.Random(7)
    seeded = Seeded({})
    with Session(any_engine, expire_on_commit=False) as session:
        done = add_rollout(session, "1.0", RolloutState.complete, 0)
        key = (done, 0, "latency")
        seed_polls(session, seeded, key, newest=NOW - timedelta(days=3), count=10, rng=rng)
        session.commit()
    short = policy.model_copy(update={"retention": Retention(measurements=timedelta(days=2))})
    with Session(any_engine, expire_on_commit=False) as session:
        # The default 14 days keep them; the policy's 2 days do not.
        default = Context(session=session, policy=policy, clock=FakeClock(NOW))
        assert roll_up_measurements(default).summaries == 0
        ctx = Context(session=session, policy=short, clock=FakeClock(NOW))
        assert roll_up_measurements(ctx).summaries == 1
        assert roll_up_measurements(ctx).summaries == 0
        session.commit()
    with Session(any_engine) as session:
        assert session.execute(sa.text("SELECT count(*) FROM measurement")).scalar_one() == 0
        assert len(list(session.exec(select(MeasurementSummary)))) == 1


async def test_wave_history_reads_the_summaries_of_rolled_up_waves(
    ctx: Context, clock: FakeClock
) -> None:
    rng = random.Random(5)
    seeded = Seeded({})
    done = add_rollout(ctx.session, "1.0", RolloutState.complete, 1)
    ctx.session.add(
        AuditEvent(at=NOW, actor="U0RM1", action="wave.start", subject="release:1.0", outcome="ok")
    )
    old, rolled = ctx.now() - timedelta(days=20), (done, 0, "latency")
    seed_polls(ctx.session, seeded, rolled, newest=old, count=40, rng=rng)
    seed_polls(ctx.session, seeded, (done, 1, "latency"), newest=ctx.now(), count=5, rng=rng)
    assert roll_up_measurements(ctx).summaries == 1

    reply = await run(ctx, "/wave history 1.0")

    lines = reply.text.splitlines()
    assert "Measurements:" in lines
    summary = next(line for line in lines if line.startswith("wave 1 (staging) · latency: "))
    polls = seeded.polls[rolled]
    values = sorted(v for _, v, _ in polls if v is not None)
    assert summary.startswith(f"wave 1 (staging) · latency: {len(polls)} polls (")
    assert f"p95 {statistics.quantiles(values, n=100, method='inclusive')[94]:.4g}" in summary
    assert f"max {values[-1]:.4g}" in summary
    assert summary.endswith("(rolled up)")
    raw = next(line for line in lines if line.startswith("wave 2 (internal) · latency: "))
    assert raw.startswith("wave 2 (internal) · latency: 5 polls (")
    assert "rolled up" not in raw
