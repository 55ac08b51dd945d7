"""Incremental judging judges as the full re-read did.

Three ways to judge the same polls must agree: the judge as it was before tallies (kept below as
`reference`, a copy of the old `judge_metric` that walked every poll), the tally folded one poll
at a time (`judge_tally(tally_of(polls))`), and the tallies stored beside the raw polls batch by
batch and read back (`wave_standing`), on SQLite and PostgreSQL — including after a resume (a
new `since`), with a tally missing (rebuilt from the raw polls) and after retention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from commands.analysis.judge import MetricVerdict, Verdict, judge_metric, judge_tally
from commands.analysis.measure import MISCONFIGURED, Phase, Poll
from commands.analysis.retention import roll_up_measurements
from commands.analysis.standing import Taken, store_polls, wave_standing
from commands.analysis.tally import VALUES_KEPT, tally_of
from commands.analysis.verdicts import polls_of
from commands.core import Context
from commands.policy import Metric, Policy
from commands.values import format_duration
from storage.measurements import wave_measurements
from storage.models import (
    MeasurementSummary,
    MeasurementTally,
    Release,
    ReleaseState,
    Rollout,
    RolloutState,
)
from storage.tallies import wave_tallies
from tests.commands.analysis.test_retention import close
from tests.support.clock import FakeClock

T0 = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


# ---------------------------------------------------------------- the judge before tallies


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def reference(metric: Metric, polls: Sequence[Poll], *, window_passed: bool) -> MetricVerdict:
    """The old judge_metric, verbatim but for `values` (now the latest VALUES_KEPT finite ones,
    all that anything showed of them)."""
    failures = [p for p in polls if p.phase == Phase.failed]
    inconclusives = [p for p in polls if p.phase == Phase.inconclusive]
    valid = [p for p in polls if p.phase != Phase.error]
    errors = 0
    for poll in reversed(polls):
        if poll.phase != Phase.error:
            break
        errors += 1
    values = tuple(p.value for p in polls if p.value is not None and not math.isnan(p.value))
    values = values[-VALUES_KEPT:]
    last_detail = polls[-1].detail if polls else ""
    volume = next((p.volume for p in reversed(polls) if p.volume is not None), None)

    def verdict(v: Verdict, reason: str, at: Poll | None = None) -> MetricVerdict:
        return MetricVerdict(
            metric,
            v,
            reason,
            valid=len(valid),
            failures=len(failures),
            inconclusives=len(inconclusives),
            consecutive_errors=errors,
            values=values,
            last_detail=last_detail,
            misconfigured=bool(polls) and polls[-1].misconfigured,
            decided_at=at.at if at is not None else None,
            volume=volume,
        )

    if polls and polls[-1].misconfigured:
        return verdict(Verdict.error, polls[-1].detail, polls[-1])
    if metric.compare is not None:
        if errors > metric.consecutive_error_limit:
            why = polls[-1].detail or "provider error"
            return verdict(
                Verdict.error,
                f"metrics unavailable: {_count(errors, 'error')} in a "
                f"row (limit {metric.consecutive_error_limit}): {why}",
                polls[-1],
            )
        judged = [p for p in polls if p.phase != Phase.error]
        failed = [p for p in judged if p.phase == Phase.failed]
        if len(failed) > metric.failure_limit:
            return verdict(Verdict.failed, failed[-1].detail, failed[metric.failure_limit])
        if not judged:
            return verdict(Verdict.running, "no comparison yet")
        last = judged[-1]
        if last.phase == Phase.successful:
            if window_passed:
                return verdict(Verdict.successful, last.detail)
            return verdict(Verdict.running, f"passes so far: {last.detail}")
        if window_passed:
            return verdict(Verdict.inconclusive, last.detail, last)
        return verdict(Verdict.running, last.detail)
    if len(failures) > metric.failure_limit:
        why = failures[-1].detail or "condition broken"
        return verdict(
            Verdict.failed,
            f"{_count(len(failures), 'failed poll')} (limit {metric.failure_limit}): {why}",
            failures[metric.failure_limit],
        )
    if errors > metric.consecutive_error_limit:
        why = polls[-1].detail or "provider error"
        return verdict(
            Verdict.error,
            f"metrics unavailable: {_count(errors, 'error')} in a row "
            f"(limit {metric.consecutive_error_limit}): {why}",
            polls[-1],
        )
    if len(inconclusives) > metric.inconclusive_limit:
        why = inconclusives[-1].detail or "no clear answer"
        return verdict(
            Verdict.inconclusive,
            f"{_count(len(inconclusives), 'inconclusive poll')} "
            f"(limit {metric.inconclusive_limit}): {why}",
            inconclusives[metric.inconclusive_limit],
        )
    enough = len(valid) >= max(metric.min_samples, 1)
    if window_passed and enough:
        return verdict(Verdict.successful, f"{_count(len(valid), 'valid sample')}, all within")
    if not enough:
        missing = max(metric.min_samples, 1) - len(valid)
        return verdict(
            Verdict.running,
            f"{len(valid)} of {max(metric.min_samples, 1)} valid "
            f"samples so far; needs ~{format_duration(metric.interval * missing)} "
            f"more at one per {format_duration(metric.interval)}",
        )
    return verdict(Verdict.running, f"{_count(len(valid), 'valid sample')}; window not over")


# ---------------------------------------------------------------- random metrics and polls

metrics = st.builds(
    lambda compare, failure_limit, inconclusive_limit, error_limit, min_samples, index: (
        Metric.model_validate(
            {
                "id": f"m{index}",
                "source": "prom",
                "query": "q",
                **({"compare": {}} if compare else {"success": ">= 0.97"}),
                "failure_limit": failure_limit,
                "inconclusive_limit": inconclusive_limit,
                "consecutive_error_limit": error_limit,
                "min_samples": min_samples,
            }
        )
    ),
    st.booleans(),
    st.integers(0, 4),
    st.integers(0, 4),
    st.integers(0, 4),
    st.integers(1, 6),
    st.integers(0, 3),
)
values = st.one_of(st.none(), st.just(math.nan), st.floats(-1e6, 1e6, allow_nan=False))
details = st.sampled_from(["", "q", "1.2 breaks < 1", f"{MISCONFIGURED}metrics[0].query: bad"])


@st.composite
def poll_lists(draw: st.DrawFn, max_size: int = 40) -> list[Poll]:
    phases = draw(st.lists(st.sampled_from(list(Phase)), max_size=max_size))
    polls = []
    for index, phase in enumerate(phases):
        detail = draw(details)
        if phase != Phase.error and detail.startswith(MISCONFIGURED):
            detail = "q"
        value = None if phase == Phase.error else draw(values)
        volume = draw(st.one_of(st.none(), st.floats(0, 1e6)))
        at = T0 + timedelta(minutes=index, microseconds=draw(st.integers(0, 999_999)))
        polls.append(Poll(phase, value, f"{detail} #{index}", at=at, volume=volume))
    return polls


@given(metric=metrics, polls=poll_lists(), passed=st.booleans())
@settings(max_examples=600, deadline=None)
def test_the_tally_judges_as_the_full_reread_did(
    metric: Metric, polls: list[Poll], passed: bool
) -> None:
    expected = reference(metric, polls, window_passed=passed)
    assert judge_tally(metric, tally_of(polls), window_passed=passed) == expected
    assert judge_metric(metric, polls, window_passed=passed) == expected


@given(polls=poll_lists(), cut=st.integers(0, 40))
@settings(max_examples=300, deadline=None)
def test_folding_in_two_parts_is_folding_at_once(polls: list[Poll], cut: int) -> None:
    assert tally_of(polls[cut:], tally_of(polls[:cut])) == tally_of(polls)


# ---------------------------------------------------------------- stored, batch by batch


def add_rollout(session: Session, version: str) -> Rollout:
    release = Release(
        version=version, state=ReleaseState.rolling_out, created_by="U0RM1", created_at=T0
    )
    session.add(release)
    session.flush()
    assert release.id is not None
    rollout = Rollout(
        release_id=release.id,
        plan="default",
        state=RolloutState.running,
        wave_started_at=T0,
        started_by="U0RM1",
        started_at=T0,
    )
    session.add(rollout)
    session.flush()
    return rollout


def verdicts_both_ways(
    session: Session, rollout: Rollout, since: datetime, judged: Sequence[Metric], passed: bool
) -> tuple[list[MetricVerdict], list[MetricVerdict]]:
    """(from the stored tallies, from a full re-read of the raw polls)."""
    assert rollout.id is not None
    key = (rollout.id, rollout.wave_index)
    standing = wave_standing(key, since, judged, session=session)
    rows = wave_measurements(rollout.id, rollout.wave_index, since=since, session=session)
    tallied = [judge_tally(m, standing[m.id], window_passed=passed) for m in judged]
    reread = [reference(m, polls_of(rows.get(m.id, [])), window_passed=passed) for m in judged]
    return tallied, reread


@given(
    judged=st.lists(metrics, min_size=1, max_size=3, unique_by=lambda m: m.id),
    polls=st.lists(poll_lists(max_size=12), min_size=1, max_size=3),
    batches=st.lists(st.integers(1, 4), min_size=1, max_size=12),
    resume_at=st.integers(0, 12),
    passed=st.booleans(),
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_stored_tallies_judge_as_the_raw_polls(
    any_engine: Engine,
    judged: list[Metric],
    polls: list[list[Poll]],
    batches: list[int],
    resume_at: int,
    passed: bool,
) -> None:
    """Random polls of a few metrics stored in random batches (two rollouts' polls sharing a
    batch), a resume part-way (the tallies count from the new start), then one tally deleted:
    after every batch the stored tallies judge as the full re-read does."""
    with Session(any_engine, expire_on_commit=False) as session:
        rollout = add_rollout(session, f"v{id(polls)}-{len(batches)}")
        other = add_rollout(session, f"o{id(polls)}-{len(batches)}")
        assert rollout.id is not None
        assert other.id is not None
        # One time line: poll i of every metric taken at minute i.
        steps = max(len(p) for p in polls)
        since = T0
        step = 0
        for size in batches * 4:
            if step >= steps:
                break
            batch = []
            for index in range(step, min(step + size, steps)):
                at = T0 + timedelta(minutes=index, seconds=1)
                if index == resume_at:
                    since = at  # a resume: the wave starts afresh here
                    rollout.wave_started_at = since
                taken = [
                    (judged[i % len(judged)].id, ps[index])
                    for i, ps in enumerate(polls)
                    if index < len(ps)
                ]
                batch.append(Taken((rollout.id, 0), since, at, taken))
                batch.append(Taken((other.id, 0), T0, at, taken[:1]))
            step += size
            store_polls(batch, session=session)
            tallied, reread = verdicts_both_ways(session, rollout, since, judged, passed)
            assert tallied == reread
        # The stored tallies count every raw poll since the (last) start: none was re-read.
        raw = wave_measurements(rollout.id, 0, since=since, session=session)
        stored = wave_tallies(rollout.id, 0, session=session)
        assert {m: len(p) for m, p in raw.items()} == {
            m: row.polls for m, row in stored.items() if row.since == since
        }
        # A tally lost (or never written: polls from before tallies) is rebuilt from the raw.
        session.execute(
            sa.delete(MeasurementTally).where(col(MeasurementTally.metric) == judged[0].id)
        )
        tallied, reread = verdicts_both_ways(session, rollout, since, judged, passed)
        assert tallied == reread
        session.rollback()


def test_retention_rolls_up_what_was_stored_with_tallies_and_drops_their_tallies(
    any_engine: Engine, policy: Policy
) -> None:
    """Polls stored through the tallies roll up into the summaries their raw polls give; the
    tally of a rolled-up wave goes with its raw polls, an active wave's stays and still judges
    as its raw polls do."""
    phases = [Phase.successful, Phase.failed, Phase.inconclusive, Phase.error]
    with Session(any_engine, expire_on_commit=False) as session:
        done = add_rollout(session, "1.0")
        done.state = RolloutState.complete
        active = add_rollout(session, "2.0")
        assert done.id is not None
        assert active.id is not None
        for index in range(30):
            at = T0 + timedelta(minutes=index)
            poll = Poll(phases[index % 4], None if index % 4 == 3 else index / 10, "q", at=at)
            batch = [Taken((done.id, 0), T0, at, [("m0", poll)])]
            batch.append(Taken((active.id, 0), T0, at, [("m0", poll)]))
            store_polls(batch, session=session)
        session.commit()
    later = T0 + timedelta(days=30)
    with Session(any_engine, expire_on_commit=False) as session:
        result = roll_up_measurements(
            Context(session=session, policy=policy, clock=FakeClock(later))
        )
        session.commit()
        assert (result.summaries, result.deleted) == (1, 30)
        summary = session.exec(select(MeasurementSummary)).one()
        assert (summary.polls, summary.successful, summary.failed) == (30, 8, 8)
        assert (summary.inconclusive, summary.error, summary.valued) == (7, 7, 23)
        assert close(summary.max, 2.9)
        assert wave_tallies(done.id, 0, session=session) == {}
        assert wave_tallies(active.id, 0, session=session)["m0"].polls == 30
        metric = Metric.model_validate({"id": "m0", "source": "prom", "success": ">= 1"})
        tallied, reread = verdicts_both_ways(session, active, T0, [metric], True)
        assert tallied == reread
        assert tallied[0].verdict == Verdict.failed
