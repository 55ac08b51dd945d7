"""Lists that grow: the overview of many rollouts and a release's history, in pages."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

from commands.core import Block
from commands.limits import MESSAGE_BLOCKS, MESSAGE_TEXT, fit_text, pack_sections
from commands.text import escape, mention, plural
from commands.wave.views import RolloutView, headline, pending_line
from storage.models import AuditEvent, RolloutState

HISTORY_PAGE = 25
# What each audited action reads as in a history line: plain words, never permission ids.
ACTION_WORDS = {
    "ready.new": "registered the release",
    "ready.check": "checked an item",
    "ready.fail": "marked an item failed",
    "ready.waive": "waived an item",
    "ready.remind": "reminded the owners",
    "wave.start": "started the rollout",
    "wave.promote": "promoted",
    "wave.pause": "paused",
    "wave.resume": "resumed",
    "wave.force": "forced a gate",
    "wave.ready": "found the wave ready",
    "wave.dry_run": "noted a dry-run finding",
    "wave.digest": "posted the digest",
    "rollback": "rolled back",
    "rollback.requested": "asked for a rollback",
    "rollback.request": "asked for a rollback",
    "verify": "verified",
    "proof.check": "checked a proof",
}
OUTCOME_WORDS = {"refused": "was refused", "failed": "failed", "error": "failed"}


def overview(rollouts: Sequence[RolloutView], *, total: int) -> tuple[str, list[Block]]:
    """Many active rollouts (the first of `total`), one line each, from their stored state and
    verdict: no rollout is judged and no metric read, so the answer stays quick with hundreds."""
    lines = []
    for view in rollouts:
        line = headline(view)
        if view.rollout.state == RolloutState.running:
            line += f" · verdict {view.rollout.verdict}"
        pending = pending_line(view)
        if pending:
            line += f" · {pending}"
        lines.append(line)
    if total > len(rollouts):
        lines.append(
            f"… and {total - len(rollouts)} more: see the App Home or GET /api/v1/rollouts."
        )
    title = f"{plural(total, 'active rollout')}. `/wave status RELEASE` shows one with its metrics."
    blocks = [SectionBlock(text=MarkdownTextObject(text=title)).to_dict(), *pack_sections(lines)]
    if len(blocks) > MESSAGE_BLOCKS:
        more = f"… and more: see the App Home or GET /api/v1/rollouts ({total} in all)."
        blocks = [*blocks[: MESSAGE_BLOCKS - 1], *pack_sections([more])]
    text = fit_text("\n".join([title, *lines]), MESSAGE_TEXT, more="… see the App Home.")
    return text, blocks


def history_line(event: AuditEvent) -> str:
    when = event.at.strftime("%Y-%m-%d %H:%M")
    words = ACTION_WORDS.get(event.action, event.action.replace(".", " ").replace("_", " "))
    line = f"{when} {mention(event.actor)} {words}"
    if event.outcome != "ok":
        line += f" ({OUTCOME_WORDS.get(event.outcome, escape(event.outcome))})"
    if event.detail:
        line += f" — {escape(event.detail)}"
    if event.reason:
        line += f" — why: {escape(event.reason)}"
    return line


def history_page(
    version: str, state: str, events: Sequence[AuditEvent], page: int
) -> tuple[str, list[Block]]:
    """One page of a release's history, newest first: `page 1 of 5`."""
    newest = list(reversed(events))
    pages = max(1, -(-len(newest) // HISTORY_PAGE))
    page = min(max(page, 1), pages)
    shown = newest[(page - 1) * HISTORY_PAGE : page * HISTORY_PAGE]
    state_words = state.replace("_", " ")
    title = (
        f"History of {escape(version)} ({state_words}), newest first: page {page} of {pages}"
        f" ({plural(len(newest), 'event')})."
    )
    lines = [history_line(e) for e in shown]
    if page < pages:
        lines.append(f"`/wave history {escape(version)} {page + 1}` for older events.")
    blocks = [SectionBlock(text=MarkdownTextObject(text=title)).to_dict(), *pack_sections(lines)]
    text = fit_text("\n".join([title, *lines]), MESSAGE_TEXT, more="… (see the blocks)")
    return text, blocks[:MESSAGE_BLOCKS]
