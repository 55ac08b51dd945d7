"""The console demo: start a release, watch it move, drift a metric, resume, press buttons,
roll back — driven through `Console.execute`, with the real poll job on the injected clock."""

from __future__ import annotations

import io
from datetime import timedelta

from sqlalchemy.engine import Engine

from bot.clock import SpeedClock
from bot.console.repl import Console
from bot.console.waves import poll_interval
from bot.jobs.waves import poll_cycle
from bot.runtime import Runtime
from bot.settings import Settings
from commands.policy import Policy
from tests.support.clock import FakeClock


def console(engine: Engine, policy: Policy, clock: FakeClock) -> tuple[Console, io.StringIO]:
    roles = {"release-managers": ["U0CONSOLE"], "incident-commanders": ["U0CONSOLE"]}
    runtime = Runtime(
        settings=Settings(),
        engine=engine,
        policy=policy.model_copy(update={"roles": roles}),
        clock=clock,
    )
    out = io.StringIO()
    return Console(runtime, out=out), out


async def watch(con: Console, clock: FakeClock, minutes: int, step: int = 10) -> None:
    for _ in range(0, minutes, step):
        clock.advance(minutes=step)
        await poll_cycle(con.runtime)
        con.flush_posts()
        await con.waves.after_flush()


async def test_a_newcomer_starts_watches_drifts_resumes_and_rolls_back(
    engine: Engine, policy: Policy, clock: FakeClock
) -> None:
    con, out = console(engine, policy, clock)
    assert con.waves.autopilot is False  # no --speed: you press Promote yourself
    await con.execute(":demo 1.0")
    assert "Started 1.0 (plan default): wave 1 (staging)" in out.getvalue()
    await watch(con, clock, 120)
    assert "✅ wave 1 (staging) of 1.0 is ready" in out.getvalue()
    assert "buttons: [Promote wave 1]" in out.getvalue()
    promoted = await con.execute(":press Promote wave 1")
    assert promoted == "Promoted 1.0 to wave 2 (internal)."

    drift = await con.execute(":drift preview_startup_p95_ms 3100")
    assert drift == "demo metric preview_startup_p95_ms now reads 3100"
    await watch(con, clock, 20)
    shown = out.getvalue()
    assert "⏸ 1.0 paused at wave 2 (internal) by wavegate — a metric failed" in shown
    assert "3100 breaks > 2500" in shown
    assert "buttons: [Rollback] · [Resume]" in shown

    await con.execute(":drift off")
    resumed = await con.execute("/wave resume")
    assert resumed is not None
    assert resumed.startswith("Resumed 1.0")
    asked = await con.execute("/rollback latency regression on internal")
    assert asked is not None
    assert "Roll back *1.0*" in asked
    assert "buttons: [Confirm rollback]" in out.getvalue()
    done = await con.execute(":press Confirm rollback")
    assert done == (
        "Rolled back 1.0 with no last known-good release to return to. "
        "Reason: latency regression on internal"
    )
    history = await con.execute("/wave history")
    assert history is not None
    assert "paused — failed at wave 2 (internal)" in history


async def test_autopilot_promotes_ready_waves(
    engine: Engine, policy: Policy, clock: FakeClock
) -> None:
    con, out = console(engine, policy, clock)
    assert await con.execute(":autopilot on") == "autopilot on: ready waves are promoted for you"
    await con.execute(":demo 1.0")
    await watch(con, clock, 130)
    assert "promoted 1.0 to wave 2 (internal)" in out.getvalue()


async def test_meta_commands_explain_bad_input(
    engine: Engine, policy: Policy, clock: FakeClock
) -> None:
    con, _ = console(engine, policy, clock)
    assert "no metric 'nope'; metrics: completion_success_rate" in (
        await con.execute(":drift nope 3") or ""
    )
    assert "'lots' is not a number" in (
        await con.execute(":drift preview_startup_p95_ms lots") or ""
    )
    assert (await con.execute(":press Launch")) == "no button 'Launch' is shown; buttons: none yet"
    assert (await con.execute(":autopilot maybe")) == "usage: :autopilot on|off"
    assert "meta commands" in (await con.execute(":what") or "")


def test_speed_makes_the_poll_job_run_often_enough() -> None:
    assert poll_interval(1) == timedelta(seconds=5)
    assert poll_interval(120) == timedelta(seconds=0.5)
    assert poll_interval(12000) == timedelta(seconds=0.25)
    clock = SpeedClock(12000)
    first = clock()
    assert clock() >= first
