"""The console shows the whole incident flow: the Slack calls it would make and every post."""

from __future__ import annotations

import io

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.console.repl import Console, console_channels
from bot.runtime import Runtime
from bot.settings import Settings
from commands.policy_file import builtin_policy
from tests.support.clock import FakeClock
from tests.support.incidents import running_rollout


async def test_console_declares_updates_and_resolves_a_migration_regression(
    engine: Engine, clock: FakeClock
) -> None:
    runtime = Runtime(settings=Settings(), engine=engine, policy=builtin_policy(), clock=clock)
    console_channels(runtime)
    out = io.StringIO()
    console = Console(runtime, out=out)
    with Session(engine) as session:
        running_rollout(session, "2026.11.27-1", at=clock())
    await console.execute("/incident declare migration-regression Migration 0042 locks users")
    clock.advance(minutes=30)
    await console.execute("/incident status rolled back 0042 on staging")
    await console.execute("/incident mitigated")
    clock.advance(minutes=10)
    await console.execute("/incident resolve schema 0041 restored")
    lines = out.getvalue().splitlines()
    name = "inc-20261127-1-migration-0042-locks-users"
    assert f"[slack] conversations.create #{name} → C0INC0001" in lines
    assert "[slack] conversations.invite C0INC0001: @U0CONSOLE" in lines
    assert any(
        line.startswith("[#incidents] 🟠 Sev2 Migration regression declared") for line in lines
    )
    assert (
        "[C0INC0001] Paused 1 running rollout: 2026.11.27-1. They stay paused until resumed."
        in (lines)
    )
    assert any(line.startswith("[C0INC0001] 📣 Update on #1") for line in lines)
    assert (
        "declared 10:00 UTC → mitigated 10:30 UTC (+30m) → resolved 10:40 UTC (+40m in all)"
        in lines
    )
    assert "⏸ 2026.11.27-1 — paused at 10:00 UTC (or `/wave resume 2026.11.27-1`)" in lines
