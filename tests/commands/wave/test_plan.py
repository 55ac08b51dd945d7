"""`/wave plan`: each wave's exposure, window and promoter, the least time to 100 % and the worst
cases to catch a failure and roll back, computed from the policy; read-only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commands.core import Context
from commands.policy import Actuator, Policy
from commands.policy_file import builtin_policy
from commands.wave.plan import actuator_worst, preview, short, wave_timing
from tests.conftest import DEVELOPER, run, with_channels
from tests.support.waves import (
    audit_trail,
    local_actuator,
    outbox,
    ready_release,
    small_policy,
    start,
)


@pytest.fixture
def policy() -> Policy:
    return small_policy()


def test_durations_read_in_their_two_largest_units() -> None:
    cases = {0: "0s", 0.2: "1s", 130: "2m 10s", 3600: "1h", 93600: "1d 2h", 698400: "8d 2h"}
    assert {s: short(timedelta(seconds=s)) for s in cases} == cases


def test_worst_case_detection_counts_limits_intervals_and_the_poll_loop(policy: Policy) -> None:
    staging = policy.plans["default"][0]
    timing = wave_timing(policy, staging)
    # latency_ms: failure_limit 1 → two failed polls, each 1 s interval + 5 s poll loop.
    assert timing.detect == timedelta(seconds=12)
    assert timing.detect_by == "latency_ms"
    # success_rate: 4 errors allowed in a row, retried after min(10 s, 1 s interval) = 1 s, each
    # up to a poll loop late: (1 + 5) + 4 x (1 + 5).
    assert timing.blind == timedelta(seconds=30)
    assert timing.blind_by in {"success_rate", "cost"}
    # min_samples 2 at 1 s needs 1 s: the 3 s window is longer.
    assert timing.least == timedelta(seconds=3)


def test_samples_longer_than_the_window_set_the_least_time() -> None:
    slow = small_policy('{id: slow, source: demo, success: "> 0", interval: 1m, min_samples: 10}')
    assert wave_timing(slow, slow.plans["default"][0]).least == timedelta(minutes=9)


def test_actuator_worst_case_is_every_attempt_timing_out_plus_backoff(policy: Policy) -> None:
    assert actuator_worst(policy) == timedelta(0)
    with_actuator = policy.model_copy(
        update={"actuator": Actuator(url="http://127.0.0.1:9/x", timeout="10s", retries=3)}
    )
    # 4 attempts x 10 s + 0.5 + 1 + 2 s of backoff.
    assert actuator_worst(with_actuator) == timedelta(seconds=43.5)


async def test_plan_preview_lists_every_wave_with_promoter_and_worst_cases(ctx: Context) -> None:
    reply = await run(ctx, "/wave plan", user=DEVELOPER)
    assert not reply.error, reply.text
    text = reply.text
    assert "*Plan default*: 3 waves." in text
    assert "1. *staging* — staging at 100%, window 3s" in text
    assert "promotion automatic when the window passes" in text
    assert "promotion by its approvers: vips" not in text  # vips may not promote at all
    assert "by its approvers: nobody (check the policy)" in text
    assert "a failure is caught within 12s (latency_ms)" in text
    assert "rolled back when one of release-managers, incident-commanders confirms" in text
    assert "Least time to 100 %: 9s, plus 2 promotions by people." in text


async def test_auto_rollback_wave_says_it_rolls_back_by_itself(ctx: Context) -> None:
    reply = await run(ctx, "/wave plan risky")
    assert "1. *canary* — free at 5%" in reply.text
    assert "rollback: automatic (auto_rollback) within 12s" in reply.text


async def test_plan_with_release_says_whether_it_may_start(ctx: Context) -> None:
    await run(ctx, "/ready new 1.0")
    reply = await run(ctx, "/wave plan default 1.0")
    assert "1.0 cannot start yet: checklist items tests are not done." in reply.text
    await ready_release(ctx, "2.0")
    assert "2.0 is ready" in (await run(ctx, "/wave plan 2.0")).text
    local_actuator(ctx)
    await start(ctx, "2.0")
    assert (
        "2.0 already has a rollout (running, plan default)"
        in (await run(ctx, "/wave plan 2.0")).text
    )


async def test_unknown_plan_or_release_is_a_clear_error_and_changes_nothing(ctx: Context) -> None:
    reply = await run(ctx, "/wave plan nosuch")
    assert reply.error
    assert "'nosuch' is neither a plan (plans: default, risky) nor a registered release" in (
        reply.text
    )
    extra = await run(ctx, "/wave plan default 1.0 more")
    assert extra.error
    assert "too many words" in extra.text
    assert outbox(ctx.session) == []
    assert audit_trail(ctx.session) == []


def test_builtin_plan_preview_is_complete() -> None:
    text, timings = preview(with_channels(builtin_policy()), "default")
    assert len(timings) == 6
    assert "Least time to 100 %: 8d 2h, plus 5 promotions by people." in text
    assert text.count("a failure is caught within 2m 10s (preview_startup_p95_ms)") == 6
