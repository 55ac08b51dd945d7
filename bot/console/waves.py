"""Rollouts in the console: metric polling at `--speed`, buttons you can press, demo drift.

Meta commands (console only):
  :demo VERSION            register VERSION, waive its checklist and start its rollout
  :drift METRIC VALUE      pin a demo metric (a number, `error` or `empty`); `:drift off` heals
  :press LABEL             press a button shown above (`:press Confirm rollback`)
  :autopilot on|off        press Promote as soon as a wave is ready (on under --speed)
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Protocol

from bot.clock import SpeedClock
from bot.console.text import plain_text
from bot.runtime import Runtime
from bot.sources.demo import DemoSource
from commands.core import Block, Request
from commands.wave.buttons import press
from commands.wave.views import PROMOTE
from storage.models import OutboxPost

_OBSERVED = re.compile(r" · observed .*$")
HINT = (
    "Rollouts: `:demo 1.0` starts a demo release (try `wavegate console --speed 12000`), "
    "`:drift preview_startup_p95_ms 3100` makes a metric drift, `:press LABEL` presses a button."
)


def poll_interval(factor: float) -> timedelta:
    """Real seconds between poll cycles: often enough that a sped-up wave gets its samples."""
    return timedelta(seconds=min(5.0, max(0.25, 60.0 / factor)))


class Shell(Protocol):
    """What the wave console needs of the console it runs in (bot/console/repl.py)."""

    runtime: Runtime
    user_id: str

    def print(self, text: str) -> None: ...

    async def execute(self, line: str) -> str | None: ...

    def flush_posts(self) -> int: ...


class WaveConsole:
    def __init__(self, console: Shell) -> None:
        self.console = console
        runtime = console.runtime
        speed = runtime.clock.factor if isinstance(runtime.clock, SpeedClock) else 1.0
        if speed > 1:
            runtime.poll_every = poll_interval(speed)
            # A sped-up poll job sometimes overlaps itself; APScheduler's notice is noise here.
            logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        self.autopilot = speed > 1
        # Real seconds between the console's looks at the outbox.
        self.tick = 0.2 if speed > 1 else 1.0
        self.buttons: dict[str, tuple[str, str]] = {}
        self._pending: list[tuple[str, str]] = []
        self._shown: dict[str, str] = {}

    # ------------------------------------------------------------ posts and buttons

    def remember(self, blocks: list[Block] | None) -> list[str]:
        """Note the buttons of a reply or post so `:press LABEL` finds them; their labels."""
        labels = []
        for block in blocks or []:
            for element in block.get("elements", []):
                if element.get("type") == "button":
                    label = str(element["text"]["text"])
                    self.buttons[label.lower()] = (str(element["action_id"]), str(element["value"]))
                    labels.append(label)
        return labels

    def show(self, post: OutboxPost, updated: bool) -> str | None:
        """What to print for a post, or None. A status update whose wave and state did not
        change (only fresher values) is not printed again, and a running rollout's update shows
        its headline only; buttons are remembered and listed under the post."""
        blocks: list[Block] | None = json.loads(post.blocks) if post.blocks else None
        labels = self.remember(blocks)
        text = post.text
        if self.autopilot and post.thread_key and not post.message_key:
            for block in blocks or []:
                for element in block.get("elements", []):
                    if element.get("action_id") == PROMOTE:
                        self._pending.append((PROMOTE, str(element["value"])))
        if post.message_key:
            first = text.splitlines()[0] if text else ""
            headline = _OBSERVED.sub("", first)
            if updated and self._shown.get(post.message_key) == headline:
                return None
            self._shown[post.message_key] = headline
            if updated and "· running ·" in first:
                text = first
        elif labels:
            text += "\n    buttons: " + " · ".join(f"[{label}]" for label in labels)
        return text

    async def after_flush(self) -> None:
        """Autopilot: press the Promote buttons that just arrived, as the console user."""
        pending, self._pending = self._pending, []
        for action_id, value in pending:
            await self._press(action_id, value, quiet=True)

    async def _press(self, action_id: str, value: str, *, quiet: bool = False) -> str:
        request = Request(command=action_id, text="", user_id=self.console.user_id)
        runtime = self.console.runtime
        with runtime.unit() as ctx:
            reply = await press(request, ctx, action_id, value)
        labels = self.remember(reply.blocks)
        if not quiet or reply.error:
            prefix = "(autopilot) " if quiet else ""
            self.console.print(prefix + plain_text(reply.text))
            if labels:
                self.console.print("    buttons: " + " · ".join(f"[{label}]" for label in labels))
        self.console.flush_posts()
        return reply.text

    # ------------------------------------------------------------ meta commands

    async def meta(self, line: str) -> str:
        word, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if word == ":drift":
            text = self._drift(rest)
        elif word == ":press":
            found = self.buttons.get(rest.lower())
            if found is None:
                known = ", ".join(sorted(self.buttons)) or "none yet"
                text = f"no button {rest!r} is shown; buttons: {known}"
            else:
                return await self._press(*found)
        elif word == ":autopilot":
            if rest not in {"on", "off"}:
                text = "usage: :autopilot on|off"
            else:
                self.autopilot = rest == "on"
                text = f"autopilot {rest}: ready waves are " + (
                    "promoted for you" if self.autopilot else "left for you to promote"
                )
        elif word == ":demo":
            return await self._demo(rest)
        else:
            text = "meta commands: :demo VERSION · :drift METRIC VALUE|error|empty|off · " + (
                ":press LABEL · :autopilot on|off"
            )
        self.console.print(text)
        return text

    def _drift(self, rest: str) -> str:
        sources = [
            s for s in self.console.runtime.ports.sources.values() if isinstance(s, DemoSource)
        ]
        words = rest.split()
        if words == ["off"]:
            for source in sources:
                source.clear()
            return "every demo metric is healthy again"
        if len(words) != 2:
            return "usage: :drift METRIC VALUE|error|empty|off  ·  :drift off heals every metric"
        metric, raw = words
        if self.console.runtime.policy.metric(metric) is None:
            ids = ", ".join(m.id for m in self.console.runtime.policy.metrics)
            return f"no metric {metric!r}; metrics: {ids}"
        value: float | str | None
        if raw in {"error", "empty"}:
            value = raw
        elif raw == "off":
            value = None
        else:
            try:
                value = float(raw)
            except ValueError:
                return f"{raw!r} is not a number, `error`, `empty` or `off`"
        for source in sources:
            source.drift(metric, value)
        return f"demo metric {metric} now reads {raw}" if value is not None else f"{metric} healed"

    async def _demo(self, version: str) -> str:
        if not version:
            text = "usage: :demo VERSION"
            self.console.print(text)
            return text
        console = self.console
        await console.execute(f"/ready new {version}")
        for item in console.runtime.policy.checklist:
            request = Request(
                command="/ready",
                text=f"waive {version} {item.id} console demo",
                user_id=console.user_id,
            )
            await console.runtime.run_command(request)
        console.flush_posts()
        console.print(f"(waived the {len(console.runtime.policy.checklist)} checklist items)")
        return await console.execute(f"/wave start {version}") or ""
