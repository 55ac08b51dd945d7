"""Slack's size limits, in one place, and the helpers that keep every message within them."""

from __future__ import annotations

from collections.abc import Sequence

from commands.core import Block

# https://api.slack.com/reference/block-kit/blocks: a message carries at most 50 blocks, a
# modal or App Home view at most 100; a section's text at most 3,000 characters, a header's
# 150; a message's text (the fallback and the console's text) is truncated past 4,000.
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
SECTION_TEXT = 3000
CONTEXT_TEXT = 3000
HEADER_TEXT = 150
MESSAGE_TEXT = 4000
BUTTON_TEXT = 75
ACTIONS_ELEMENTS = 25
OPTIONS = 100
OPTION_TEXT = 75

ELLIPSIS = "…"


def fit_text(text: str, limit: int, *, more: str = "") -> str:
    """`text` cut to at most `limit` characters, at a line break where one is near, ending in
    `more` (e.g. "and 12 more: see the App Home") or an ellipsis."""
    if len(text) <= limit:
        return text
    tail = f"\n{more}" if more else ELLIPSIS
    room = max(limit - len(tail), 0)
    cut = text[:room]
    newline = cut.rfind("\n")
    if more and newline > room // 2:
        cut = cut[:newline]
    return (cut + tail)[:limit]


def _more_block(count: int, where: str) -> Block:
    text = f"… and {count} more block{'s' if count != 1 else ''} not shown"
    text += f": {where}" if where else "."
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit_text(text, 3000)}]}


def fit_blocks(
    blocks: Sequence[Block], limit: int = MESSAGE_BLOCKS, *, where: str = ""
) -> list[Block]:
    """At most `limit` blocks, every text within its limit; what does not fit is named in a last
    context block ("… and 12 more: see the App Home"), so nothing is dropped silently."""
    fitted = [_fit_block(dict(block)) for block in blocks]
    if len(fitted) <= limit:
        return fitted
    kept = fitted[: limit - 1]
    return [*kept, _more_block(len(fitted) - len(kept), where)]


def _fit_block(block: Block) -> Block:
    kind = block.get("type")
    text = block.get("text")
    if isinstance(text, dict) and isinstance(text.get("text"), str):
        limit = HEADER_TEXT if kind == "header" else SECTION_TEXT
        block["text"] = {**text, "text": fit_text(text["text"], limit)}
    if kind == "context" and isinstance(block.get("elements"), list):
        block["elements"] = [
            {**e, "text": fit_text(e["text"], CONTEXT_TEXT)}
            if isinstance(e, dict) and isinstance(e.get("text"), str)
            else e
            for e in block["elements"][:10]
        ]
    if kind == "actions" and isinstance(block.get("elements"), list):
        block["elements"] = block["elements"][:ACTIONS_ELEMENTS]
    return block


def fit_message(text: str, blocks: Sequence[Block] | None) -> tuple[str, list[Block] | None]:
    """A message's fallback text and blocks, both within Slack's limits."""
    fitted = fit_blocks(blocks) if blocks else None
    return fit_text(
        text, MESSAGE_TEXT, more="… (cut: the whole text is in the blocks or the API)"
    ), (fitted or None)


def pack_sections(lines: Sequence[str], *, limit: int = SECTION_TEXT) -> list[Block]:
    """Lines packed into as few mrkdwn sections as fit, each within Slack's section limit (a
    line too long for one section is cut)."""
    room = limit - 100
    blocks: list[Block] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        line = fit_text(line, room)
        if chunk and size + len(line) + 1 > room:
            blocks.append(_section("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        blocks.append(_section("\n".join(chunk)))
    return blocks


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
