"""The console does what Slack does: every button can be pressed (section accessories too: Done,
Resume), the App Home reads as text, and log lines do not print over the prompt."""

from __future__ import annotations

import io
import logging
import os
import subprocess

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.console.prompt import CLEAR_LINE, PROMPT, Prompt, restore_logs, route_logs_above
from bot.console.repl import Console, console_channels
from bot.runtime import Runtime
from bot.settings import Settings
from commands.policy_file import builtin_policy
from tests.support.clock import FakeClock
from tests.support.incidents import running_rollout
from tests.support.paths import ROOT


def console(engine: Engine, clock: FakeClock) -> tuple[Console, io.StringIO]:
    runtime = Runtime(settings=Settings(), engine=engine, policy=builtin_policy(), clock=clock)
    console_channels(runtime)
    out = io.StringIO()
    return Console(runtime, out=out), out


async def test_done_buttons_on_the_guidance_are_pressable(engine: Engine, clock: FakeClock) -> None:
    con, out = console(engine, clock)
    await con.execute("/incident declare sandbox-instability sandboxes crash under load")
    shown = out.getvalue()
    assert "buttons: [Done 1] · [Done 2] · [Done 3] · [Done 4]" in shown
    assert await con.execute(":press Done 2") == "Done."
    after = out.getvalue()[len(shown) :]
    assert "✅ 2. Identify the affected tenant and session classes — @U0CONSOLE" in after


async def test_resume_buttons_of_a_resolve_summary_are_pressable(
    engine: Engine, clock: FakeClock
) -> None:
    con, out = console(engine, clock)
    with Session(engine) as session:
        running_rollout(session, "2026.11.27-1", at=clock())
    await con.execute("/incident declare sandbox-instability sandboxes crash under load")
    await con.execute("/incident resolve capacity restored")
    assert "[Resume 2026.11.27-1]" in out.getvalue()
    reply = await con.execute(":press Resume 2026.11.27-1")
    assert reply is not None
    assert reply == "Resumed the rollout paused by incident #1."


async def test_home_renders_as_text_with_pressable_buttons(
    engine: Engine, clock: FakeClock
) -> None:
    con, _ = console(engine, clock)
    await con.execute(":demo 1.0")
    await con.execute(":demo 2.0")
    text = await con.execute(":home")
    assert text is not None
    assert "== Waiting on you ==" in text
    assert "== Active rollouts (2) ==" in text
    assert "For @U0CONSOLE" in text
    assert "buttons: [Pause 1.0] · [Rollback 1.0] · [Pause 2.0] · [Rollback 2.0]" in text
    reply = await con.execute(":press Pause 2.0")
    assert reply == "Paused 2.0."


def test_a_log_line_is_written_above_the_prompt_and_the_typing_is_kept() -> None:
    out = io.StringIO()
    prompt = Prompt(out, typed=lambda: "/wave sta", redraw=True)
    handler = logging.StreamHandler(io.StringIO())
    root = logging.getLogger()
    root.addHandler(handler)
    swapped = route_logs_above(prompt)
    try:
        prompt.showing = True
        logging.getLogger("wavegate.test").warning("the outbox is behind")
    finally:
        restore_logs(swapped)
        root.removeHandler(handler)
    assert f"{CLEAR_LINE}the outbox is behind\n{PROMPT}/wave sta" in out.getvalue()


def test_output_while_not_at_the_prompt_is_plain() -> None:
    out = io.StringIO()
    prompt = Prompt(out, redraw=True)
    prompt.write("a reply\n")
    assert out.getvalue() == "a reply\n"


def test_make_console_passes_its_arguments_through() -> None:
    # Run as a make of its own: under `make test` a nested make would also print
    # "make[1]: Leaving directory …" after the command.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "console", "ARGS=--speed 12000 --user U0ME"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert done.stdout.splitlines()[-1].endswith("wavegate console --speed 12000 --user U0ME")
