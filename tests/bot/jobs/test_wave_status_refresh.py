"""A status message shows fresh values at most every few minutes when nothing changed, so
polling many rollouts stays within Slack's rate limits; a change of state is posted at once."""

from __future__ import annotations

import importlib

import pytest

from commands.analysis.checks import REFRESHES_PER_MINUTE, RefreshBudget
from commands.core import Context
from commands.wave.rules.pause import pause_running_rollouts
from commands.wave.rules.posts import STATUS_REFRESH, refresh_status
from storage.models import PauseKind
from storage.outbox import mark_sent, pending_posts
from tests.conftest import run
from tests.support.clock import FakeClock
from tests.support.waves import rollout, small_policy, start, status_posts


def deliver_all(ctx: Context) -> None:
    for post in pending_posts(session=ctx.session):
        mark_sent(post, at=ctx.now(), session=ctx.session)
    ctx.session.commit()


async def test_value_refresh_waits_for_the_interval_but_a_pause_does_not(
    ctx: Context, clock: FakeClock
) -> None:
    ctx.policy = small_policy()
    await start(ctx, "1.0")
    current = rollout(ctx, "1.0")
    deliver_all(ctx)
    published = len(status_posts(ctx.session, current.id))

    clock.advance(seconds=60)
    assert refresh_status(ctx, current) is False
    assert len(status_posts(ctx.session, current.id)) == published

    clock.advance(STATUS_REFRESH)
    assert refresh_status(ctx, current) is True
    assert len(status_posts(ctx.session, current.id)) == published + 1
    deliver_all(ctx)

    clock.advance(seconds=1)
    await pause_running_rollouts(ctx, kind=PauseKind.manual, reason="freeze", actor="U0RM1")
    ctx.session.commit()
    latest = status_posts(ctx.session, current.id)[-1]
    assert len(status_posts(ctx.session, current.id)) == published + 2
    assert "paused" in latest.text.lower()


async def test_many_active_rollouts_are_listed_one_line_each(ctx: Context) -> None:
    ctx.policy = small_policy()
    versions = [f"1.{n}" for n in range(7)]
    for version in versions:
        await start(ctx, version)
    reply = await run(ctx, "/wave status")
    lines = reply.text.splitlines()
    assert lines[0] == "7 active rollouts. `/wave status RELEASE` shows one with its metrics."
    assert [line.split("*")[1] for line in lines[1:]] == versions
    assert all("verdict running" in line for line in lines[1:])
    assert "samples" not in reply.text  # no rollout was judged metric by metric
    detailed = await run(ctx, "/wave status 1.3")
    assert "samples" in detailed.text


async def test_the_overview_names_how_many_it_leaves_out(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The package exports the Family as `family`, which hides the module of the same name.
    monkeypatch.setattr(importlib.import_module("commands.wave.family"), "LISTED", 4)
    ctx.policy = small_policy()
    for n in range(7):
        await start(ctx, f"2.{n}")
    lines = (await run(ctx, "/wave status")).text.splitlines()
    assert lines[0].startswith("7 active rollouts.")
    assert len(lines) == 1 + 4 + 1
    assert lines[-1] == "… and 3 more: see the App Home or GET /api/v1/rollouts."


def test_values_only_refreshes_share_a_budget_across_rollouts(clock: FakeClock) -> None:
    """Slack rates chat.update at about 50 a minute: thousands of rollouts take turns."""
    budget = RefreshBudget()
    taken = sum(budget.take(clock()) for _ in range(5000))
    assert taken == REFRESHES_PER_MINUTE
    clock.advance(seconds=30)
    assert sum(budget.take(clock()) for _ in range(5000)) == REFRESHES_PER_MINUTE // 2
    clock.advance(minutes=10)  # a quiet spell fills it to one minute's worth, no more
    assert sum(budget.take(clock()) for _ in range(5000)) == REFRESHES_PER_MINUTE
    clock.advance(seconds=-120)  # a clock that goes back gives nothing
    assert budget.take(clock()) is False
