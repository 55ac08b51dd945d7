"""Rollouts in the console: metric polling at `--speed`, buttons you can press, demo drift.

Meta commands (console only):
  :demo VERSION            register VERSION, waive its checklist and start its rollout
  :drift METRIC VALUE      pin a demo metric (a number, `error` or `empty`); `:drift off` heals
  :press LABEL             press a button shown above (`:press Confirm rollback`, `:press Done 2`)
  :home                    your App Home, as text (what waits on you, rollouts, incidents)
  :autopilot on|off        press Promote as soon as a wave is ready (on under --speed)
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Protocol

from bot.clock import SpeedClock
from bot.console.text import plain_text
from bot.runtime import Runtime
from bot.sources.demo import DemoSource
from commands.core import Block, Reply, Request
from commands.home.content import home_content
from commands.home.view import home_text, home_view
from commands.incident import actions as incident_actions
from commands.incident.views import RESUME_ACTION, TICK_ACTION
from commands.wave.buttons import ACTIONS as WAVE_ACTIONS
from commands.wave.buttons import press
from commands.wave.views import PROMOTE
from storage.models import OutboxPost

_OBSERVED = re.compile(r" · observed .*$")
# The message key of a rollout's status message (commands/wave/rules/base.py thread_key).
ROLLOUT_STATUS = "rollout:"
HINT = (
    "Rollouts: `:demo 1.0` starts a demo release (try `wavegate console --speed 12000`), "
    "`:drift preview_startup_p95_ms 3100` makes a metric drift, `:press LABEL` presses a button."
)


def poll_interval(factor: float) -> timedelta:
    """Real seconds between poll cycles: often enough that a sped-up wave gets its samples."""
    return timedelta(seconds=min(5.0, max(0.25, 60.0 / factor)))


def button_elements(blocks: list[Block] | None) -> Iterator[dict[str, Any]]:
    """Every button of some blocks: in actions blocks and as section accessories."""
    for block in blocks or []:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("type") == "button":
                yield element


def _qualifier(value: str) -> str | None:
    """What tells apart buttons of the same label: the release, the step or the rollout."""
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict):
        for key in ("release", "step", "rollout"):
            if data.get(key) is not None:
                return str(data[key])
    return None


def distinct_labels(elements: list[dict[str, Any]]) -> list[str]:
    """Button labels, each label that repeats within the message qualified by what it acts on:
    `Done 2`, `Pause 2.0` (or numbered, when the value does not say)."""
    labels = [str(element["text"]["text"]) for element in elements]
    out: list[str] = []
    for label, element in zip(labels, elements, strict=True):
        if labels.count(label) > 1:
            label = f"{label} {_qualifier(str(element.get('value', ''))) or len(out) + 1}"
        while label.lower() in {x.lower() for x in out}:
            label += "'"
        out.append(label)
    return out


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
        """Note the buttons of a reply or post so `:press LABEL` finds them; their labels (made
        distinct within the message, as `Done 2` or `Pause 2.0`)."""
        elements = list(button_elements(blocks))
        labels = distinct_labels(elements)
        for label, element in zip(labels, elements, strict=True):
            self.buttons[label.lower()] = (str(element["action_id"]), str(element.get("value", "")))
        return labels

    def show(self, post: OutboxPost, updated: bool) -> str | None:
        """What to print for a post, or None. A status update whose wave and state did not
        change (only fresher values) is not printed again, and a running rollout's update shows
        its headline only; buttons are remembered and listed under the post."""
        blocks: list[Block] | None = json.loads(post.blocks) if post.blocks else None
        labels = self.remember(blocks)
        text = post.text
        if self.autopilot and post.thread_key and not post.message_key:
            for element in button_elements(blocks):
                if element.get("action_id") == PROMOTE:
                    self._pending.append((PROMOTE, str(element["value"])))
        if post.message_key and post.message_key.startswith(ROLLOUT_STATUS):
            first = text.splitlines()[0] if text else ""
            headline = _OBSERVED.sub("", first)
            if updated and self._shown.get(post.message_key) == headline:
                return None
            self._shown[post.message_key] = headline
            if updated and "· running ·" in first:
                text = first
            return text
        if post.message_key:
            # Another message redrawn in place (an incident's guidance): shown when it changed.
            if updated and self._shown.get(post.message_key) == text:
                return None
            self._shown[post.message_key] = text
        if labels:
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
            if action_id in WAVE_ACTIONS:
                reply: Reply | None = await press(request, ctx, action_id, value)
            elif action_id.startswith((TICK_ACTION, RESUME_ACTION)):
                reply = await incident_actions.press(request, ctx, action_id, value)
            else:
                reply = Reply(f"the console cannot press {action_id!r}", error=True)
        if reply is None:
            # A ticked step: the answer is the guidance message, redrawn below.
            reply = Reply("Done.")
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
        elif word == ":home":
            return self._home()
        else:
            text = "meta commands: :demo VERSION · :drift METRIC VALUE|error|empty|off · " + (
                ":press LABEL · :home · :autopilot on|off"
            )
        self.console.print(text)
        return text

    def _home(self) -> str:
        """The App Home of the console's user, as text, with its buttons ready for `:press`."""
        request = Request(command="home", text="", user_id=self.console.user_id)
        with self.console.runtime.unit() as ctx:
            content = home_content(ctx, request)
        text = plain_text(home_text(content))
        labels = self.remember(home_view(content)["blocks"])
        if labels:
            text += "\n    buttons: " + " · ".join(f"[{label}]" for label in labels)
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
