"""A metric whose latest poll read nothing shows why, never an older poll's value as if it were
current: in `/wave status`, and in the status message (the same lines)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from commands.analysis.judge import judge_metric
from commands.analysis.measure import Phase, Poll, Reading, classify
from commands.core import Context
from commands.policy import Metric, Policy
from commands.wave import views
from commands.wave.rules.reactions import record_readings
from storage.models import OutboxPost
from tests.conftest import run
from tests.support.waves import rollout, small_policy, start


@pytest.fixture
def policy() -> Policy:
    return small_policy()


def metric(**overrides: object) -> Metric:
    fields: dict[str, object] = {"id": "p95", "source": "demo", "failure": "> 2500", "unit": "ms"}
    fields.update(overrides)
    return Metric.model_validate(fields)


def test_a_source_that_stopped_answering_shows_the_cause_not_the_old_value() -> None:
    m = metric(consecutive_error_limit=3)
    polls = [
        Poll(Phase.successful, 1234.0, ""),
        Poll(Phase.error, None, "the source timed out after 5s; query: p95{release='1.0'}"),
        Poll(Phase.error, None, "the source timed out after 5s; query: p95{release='1.0'}"),
    ]
    line = views.metric_line(judge_metric(m, polls, window_passed=False))
    assert "no data for the last 2 polls (~2m): the source timed out after 5s" in line
    assert "1234" not in line


def test_an_error_verdict_says_the_cause_once() -> None:
    m = metric(consecutive_error_limit=0)
    polls = [Poll(Phase.successful, 1234.0, ""), Poll(Phase.error, None, "connection refused")]
    line = views.metric_line(judge_metric(m, polls, window_passed=False))
    assert line.startswith("🙈 p95 no data for the last poll (~1m) (failure > 2500)")
    assert "· metrics unavailable: 1 error in a row (limit 0): connection refused" in line
    assert line.count("connection refused") == 1
    assert "1234" not in line


def test_an_empty_answer_says_no_samples_in_plain_words() -> None:
    m = metric(inconclusive_limit=5)
    empty = classify(m, Reading(value=None))
    assert empty.detail == "no samples in the window, counted as undecided"
    line = views.metric_line(
        judge_metric(m, [Poll(Phase.successful, 900.0, ""), empty], window_passed=False)
    )
    assert "no value in the latest poll: no samples in the window, counted as undecided" in line
    assert "900" not in line
    assert "on_empty" not in line


def test_a_current_value_is_shown_with_its_samples_in_words() -> None:
    m = metric(min_samples=3)
    line = views.metric_line(
        judge_metric(m, [Poll(Phase.successful, 812.0, "")], window_passed=False)
    )
    assert "812 ms" in line
    assert "1 sample (3 needed)" in line


async def test_wave_status_and_the_status_message_show_why(ctx: Context) -> None:
    await start(ctx, "1.0")
    current = rollout(ctx, "1.0")
    latency = ctx.policy.metric("latency_ms")
    assert latency is not None

    def read(reading: Reading) -> None:
        ctx.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
        record_readings(
            ctx, current, wave_index=0, taken_at=ctx.now(), readings=[(latency, reading)]
        )

    read(Reading(value=1717.0))
    read(Reading(error="the source timed out after 5s"))
    ctx.session.commit()
    reply = await run(ctx, "/wave status")
    line = next(t for t in reply.text.splitlines() if "latency_ms" in t)
    assert "no data for the last poll (~1s): the source timed out after 5s" in line
    assert "1717" not in line

    await run(ctx, "/wave pause 1.0 looking at the source")
    posts = ctx.session.exec(select(OutboxPost).order_by(col(OutboxPost.id))).all()
    status = [p for p in posts if p.message_key == "rollout:1"]
    assert "no data for the last poll (~1s): the source timed out" in status[-1].text
    assert "1717" not in status[-1].text
