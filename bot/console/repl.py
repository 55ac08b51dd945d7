"""`wavegate console`: the same commands with no Slack, in a terminal.

Type `/ready` or `/wave status`; posts that would go to Slack channels print here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from types import ModuleType
from typing import TextIO

from bot.console.chat import ConsoleIncidentChat
from bot.console.prompt import PROMPT, Prompt, restore_logs, route_logs_above
from bot.console.text import plain_text
from bot.console.waves import HINT, WaveConsole
from bot.jobs.scheduler import build_scheduler
from bot.runtime import Runtime
from bot.wiring import wire
from commands.core import Request
from storage.outbox import get_message, mark_sent, pending_posts, remember_message

CONSOLE_USER = "U0CONSOLE"
HISTORY = Path.home() / ".wavegate_history"
BANNER = """wavegate console — the Slack commands, locally. Try:
  /ready new 2026.11.27-1     register a release candidate
  /ready                      its readiness checklist
  /ops help                   every command
Ctrl-D or `quit` leaves."""


class Console:
    def __init__(self, runtime: Runtime, *, user_id: str = CONSOLE_USER, out: TextIO = sys.stdout):
        self.runtime = runtime
        self.user_id = user_id
        self.out = out
        self.prompt = Prompt(out)
        self._ts = 0
        wire(runtime, chat=ConsoleIncidentChat(self.print))
        self.waves = WaveConsole(self)

    def print(self, text: str) -> None:
        self.prompt.write(text + "\n")

    async def execute(self, line: str) -> str | None:
        """Run one typed line; returns the reply text (None for a blank line)."""
        line = line.strip()
        if not line:
            return None
        if line.startswith(":"):
            return await self.waves.meta(line)
        if not line.startswith("/"):
            line = "/ops " + line
        command, _, text = line.partition(" ")
        request = Request(command=command, text=text, user_id=self.user_id, channel_id="CCONSOLE")
        reply = await self.runtime.run_command(request)
        self.print(plain_text(reply.text))
        if labels := self.waves.remember(reply.blocks):
            self.print("    buttons: " + " · ".join(f"[{label}]" for label in labels))
        self.flush_posts()
        await self.waves.after_flush()
        return reply.text

    def flush_posts(self) -> int:
        """Print the posts that would go to Slack, and mark them delivered."""
        shown = 0
        with self.runtime.unit() as ctx:
            session = ctx.session
            for post in pending_posts(session=session):
                channel = (
                    post.channel if post.channel.startswith(("#", "C")) else f"#{post.channel}"
                )
                where = f"[{channel}]"
                updated = bool(post.message_key and get_message(post.message_key, session=session))
                if updated:
                    where += " (updated)"
                elif post.thread_key:
                    where += " (thread)"
                if (text := self.waves.show(post, updated)) is not None:
                    self.print(f"{where} {plain_text(text)}")
                if post.message_key:
                    self._ts += 1
                    remember_message(
                        post.message_key, channel=post.channel, ts=str(self._ts), session=session
                    )
                mark_sent(post, at=self.runtime.clock(), session=session)
                shown += 1
        return shown

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.waves.tick)
            self.flush_posts()
            await self.waves.after_flush()

    async def repl(self) -> None:
        readline = _readline()
        if readline is not None:
            self.prompt.typed = readline.get_line_buffer
        swapped = route_logs_above(self.prompt)
        self.print(BANNER)
        self.print(HINT)
        scheduler = build_scheduler(self.runtime)
        scheduler.start()
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                self.prompt.showing = True
                try:
                    line = await asyncio.to_thread(input, PROMPT)
                except EOFError:
                    self.prompt.showing = False
                    self.print("")
                    break
                self.prompt.showing = False
                if line.strip() in {"quit", "exit"}:
                    break
                await self.execute(line)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            scheduler.shutdown(wait=False)
            restore_logs(swapped)
            # The metric sources' shared HTTP session, opened by the first poll.
            await self.runtime.source_http.close()
            if readline is not None:
                with contextlib.suppress(OSError):
                    readline.write_history_file(str(HISTORY))


def _readline() -> ModuleType | None:
    """Line editing and history where the platform has readline."""
    try:
        import readline
    except ImportError:
        return None
    with contextlib.suppress(OSError):
        readline.read_history_file(str(HISTORY))
    return readline


def console_channels(runtime: Runtime) -> None:
    """With no channels in the policy, the console still shows what would be posted."""
    channels = runtime.policy.channels
    if channels.rollouts is None or channels.incidents is None:
        updated = channels.model_copy(
            update={
                "rollouts": channels.rollouts or "#rollouts",
                "incidents": channels.incidents or "#incidents",
            }
        )
        runtime.policy = runtime.policy.model_copy(update={"channels": updated})
