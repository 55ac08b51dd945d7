"""Posts to shared channels go through the outbox, in the same transaction as the change."""

from __future__ import annotations

from commands.core import Block, Context
from commands.limits import fit_message
from storage.outbox import enqueue_post


def announce(
    ctx: Context,
    text: str,
    *,
    channel: str | None = None,
    blocks: list[Block] | None = None,
    message_key: str | None = None,
    thread_key: str | None = None,
) -> None:
    """Queue a post to `channel` (default: the policy's rollouts channel); no channel, no post.
    Nothing over Slack's limits is queued: text and blocks are fitted here (commands/limits.py)."""
    target = channel or ctx.policy.channels.rollouts
    if not target:
        return
    text, blocks = fit_message(text, blocks)
    enqueue_post(
        channel=target,
        text=text,
        blocks=blocks,
        message_key=message_key,
        thread_key=thread_key,
        at=ctx.now(),
        session=ctx.session,
    )
