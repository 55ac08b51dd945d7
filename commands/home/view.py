"""The App Home as Block Kit (for `views.publish`) and as text (for the console), within Slack's
100 blocks and 3,000 characters a section at any size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from commands.core import Block as BlockDict
from commands.home.content import HomeContent, RolloutEntry
from commands.incident import views as incident_views
from commands.ready.family import ICONS
from commands.text import escape, mention, said, span
from commands.wave import views

# Slack's limits for a Home tab view and for a section's text.
VIEW_BLOCKS = 100
SECTION_CHARS = 3000
# The waiting-on-you lists are the first thing a person reads: a few, then a count.
WAITING_SHOWN = 8
CHECKLIST_SHOWN = 30
MORE_ROLLOUTS = "see `/wave status` or GET /api/v1/rollouts"
MORE_INCIDENTS = "see `/incident` or GET /api/v1/incidents"


@dataclass
class HomeView:
    """Blocks and the same content as text lines, built side by side."""

    blocks: list[BlockDict] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def add(self, block: Block) -> None:
        self.blocks.append(block.to_dict())

    def header(self, text: str) -> None:
        self.add(HeaderBlock(text=text[:150]))
        self.lines += ["", f"== {text} =="]

    def section(self, text: str, accessory: ButtonElement | None = None) -> None:
        self.add(SectionBlock(text=MarkdownTextObject(text=clip(text)), accessory=accessory))
        self.lines.append(text + (f"  [{label(accessory)}]" if accessory else ""))

    def buttons(self, buttons: Sequence[ButtonElement]) -> None:
        if buttons:
            self.add(ActionsBlock(elements=list(buttons)))
            self.lines.append("    " + " · ".join(f"[{label(b)}]" for b in buttons))

    def note(self, text: str) -> None:
        self.add(ContextBlock(elements=[MarkdownTextObject(text=clip(text))]))
        self.lines.append(text)

    def divider(self) -> None:
        self.add(DividerBlock())

    def more(self, hidden: int, where: str) -> None:
        if hidden > 0:
            self.note(f"… and {hidden} more — {where}")


def label(button: ButtonElement) -> str:
    return button.text.text if button.text is not None else ""


def clip(text: str) -> str:
    return text if len(text) <= SECTION_CHARS else text[: SECTION_CHARS - 1] + "…"


def chunks(lines: Sequence[str], limit: int = SECTION_CHARS) -> list[str]:
    """Lines joined into as few sections as fit Slack's limit."""
    out: list[str] = []
    current: list[str] = []
    for line in lines:
        line = clip(line)
        if current and sum(len(x) + 1 for x in current) + len(line) > limit:
            out.append("\n".join(current))
            current = []
        current.append(line)
    if current:
        out.append("\n".join(current))
    return out


def rollout_line(entry: RolloutEntry) -> str:
    line = views.headline(entry.view)
    if entry.view.rollout.state == "running":
        line += f" · verdict {entry.view.rollout.verdict}"
    return line


def rollout_buttons(entry: RolloutEntry) -> list[ButtonElement]:
    """The status message's buttons, only those this viewer may use now."""
    allowed = {
        views.PROMOTE: entry.may_promote and entry.promotable,
        views.PAUSE: entry.may_pause,
        views.RESUME: entry.may_resume,
        views.ROLLBACK_REQUEST: entry.may_rollback,
    }
    return [b for b in views.status_buttons(entry.view) if allowed.get(b.action_id or "", False)]


def _waiting(home: HomeView, content: HomeContent) -> None:
    home.header("Waiting on you")
    waiting = 0
    promotable = content.promotable
    for entry in promotable[:WAITING_SHOWN]:
        view = entry.view
        text = (
            f"*{escape(view.release.version)}*: "
            f"{views.wave_label(view.waves, view.rollout.wave_index)} "
            "passed its window with a successful verdict — promote it when ready."
        )
        home.section(text, accessory=views.promote_button(view))
    home.more(len(promotable) - WAITING_SHOWN, MORE_ROLLOUTS)
    waiting += len(promotable)
    for ask in content.rollbacks[:WAITING_SHOWN]:
        text = (
            # The release name and the reason are what people typed.
            f"{mention(ask.asked.actor)} asked to roll back *{escape(ask.version)}* "
            f"{span(content.now - ask.asked.at)} ago: "
            f"{escape(ask.asked.reason or '')}"
        )
        home.blocks += views.confirm_rollback_blocks(text, ask.version, ask.asked.reason or "")
        home.lines += [text, "    [Confirm rollback]"]
    home.more(len(content.rollbacks) - WAITING_SHOWN, MORE_ROLLOUTS)
    waiting += len(content.rollbacks)
    if content.led:
        lines = [f"You lead {incident_views.one_line(i)}" for i in content.led]
        for text in chunks(lines):
            home.section(text)
        waiting += len(content.led)
    if content.owned and content.checklist is not None:
        version = content.checklist.release.version
        lines = [
            f"{ICONS[s.state]} *{s.item.id}* of {version} ({s.state.value}) is yours: "
            f"`/ready check {version} {s.item.id} EVIDENCE`"
            for s in content.owned[:WAITING_SHOWN]
        ]
        for text in chunks(lines):
            home.section(text)
        home.more(len(content.owned) - WAITING_SHOWN, f"see `/ready {version}`")
        waiting += len(content.owned)
    if waiting == 0:
        home.section("Nothing waits on you.")


def _rollouts(home: HomeView, content: HomeContent) -> None:
    home.header(f"Active rollouts ({content.rollouts_total})")
    if not content.rollouts:
        home.section("No rollout is active. `/wave start RELEASE [PLAN]` starts one.")
    for entry in content.rollouts:
        home.section(rollout_line(entry))
        home.buttons(rollout_buttons(entry))
    home.more(content.rollouts_total - len(content.rollouts), MORE_ROLLOUTS)


def _incidents(home: HomeView, content: HomeContent) -> None:
    home.header(f"Open incidents ({content.incidents_total})")
    if not content.incidents:
        home.section("No incident is open.")
    for incident in content.incidents:
        home.section(
            f"{incident_views.STATUS_ICON[incident.status]} {incident_views.one_line(incident)}"
            f" · lead {mention(incident.commander)}"
        )
    home.more(content.incidents_total - len(content.incidents), MORE_INCIDENTS)


def _checklist(home: HomeView, content: HomeContent) -> None:
    checklist = content.checklist
    if checklist is None:
        home.header("Checklist")
        home.section("No release is waiting. `/ready new RELEASE` registers one.")
        return
    release = checklist.release
    done = len(checklist.items) - len(checklist.missing)
    home.header(f"Checklist of {release.version}"[:150])
    lines = [f"{done} of {len(checklist.items)} done ({said(release.state)})."]
    for status in checklist.items[:CHECKLIST_SHOWN]:
        owner = f" · owner {mention(status.item.owner)}" if status.item.owner else ""
        lines.append(f"{ICONS[status.state]} *{status.item.id}* — {status.state.value}{owner}")
    for text in chunks(lines):
        home.section(text)
    home.more(len(checklist.items) - CHECKLIST_SHOWN, f"see `/ready {release.version}`")


def build_home(content: HomeContent) -> HomeView:
    home = HomeView()
    home.add(HeaderBlock(text="wavegate"))
    updated = f"For {mention(content.viewer)} · updated {content.now.astimezone(UTC):%H:%M} UTC"
    home.note(updated)
    for part in (_waiting, _rollouts, _incidents, _checklist):
        home.divider()
        part(home, content)
    if len(home.blocks) > VIEW_BLOCKS:
        # Every list above is capped, so this only guards against a policy with huge lists.
        home.blocks = home.blocks[: VIEW_BLOCKS - 1]
        home.note(f"… the Home is cut at Slack's {VIEW_BLOCKS} blocks — {MORE_ROLLOUTS}")
    return home


def home_view(content: HomeContent) -> dict[str, Any]:
    """The `view` argument of `views.publish`."""
    return {"type": "home", "blocks": build_home(content).blocks}


def home_text(content: HomeContent) -> str:
    """The Home as the console prints it."""
    return "\n".join(build_home(content).lines).strip()
