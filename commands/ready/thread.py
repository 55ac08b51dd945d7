"""A release's readiness thread: one message in the rollouts channel, kept up to date with the
checklist's summary, and every readiness event (registered, checked, failed, waived, verified,
expiring) a reply in its thread. The same mechanism as a rollout's status message: the outbox's
message key (chat.update in place) and thread key (replies under it), commands/announce.py.

A person's reply points at the thread: a link when the message is posted (its ts is known) and
the policy names the workspace (`channels.workspace_url`), else the words "in the thread of
1.0's checklist message in #channel".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from commands.announce import announce
from commands.core import Context
from commands.text import escape, plural
from storage.models import Release
from storage.outbox import get_message

# Item names listed in the summary; the rest are counted.
SHOWN = 8
CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")


@dataclass(frozen=True)
class Progress:
    """What the summary says of a checklist: items done, and which are not (by state)."""

    total: int
    done: int
    failed: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.done == self.total


def key_of(release: Release) -> str:
    return f"readiness:{release.id}"


def _names(ids: tuple[str, ...]) -> str:
    shown = ", ".join(ids[:SHOWN])
    if len(ids) > SHOWN:
        shown += f" and {len(ids) - SHOWN} more"
    return shown


def summary_text(version: str, progress: Progress) -> str:
    """`📝 Readiness of 1.0: 12 of 30 items done. Failed: … Waiting on: …`"""
    head = f"📝 Readiness of *{escape(version)}*: "
    if progress.total == 0:
        return head + "the policy defines no checklist items."
    if progress.complete:
        return head + f"every item done ({plural(progress.total, 'item')}) — ready to roll out."
    parts = [head + f"{progress.done} of {plural(progress.total, 'item')} done."]
    if progress.failed:
        parts.append(f"Failed: {_names(progress.failed)}.")
    if progress.expired:
        parts.append(f"Expired (check again): {_names(progress.expired)}.")
    if progress.pending:
        parts.append(f"Waiting on: {_names(progress.pending)}.")
    parts.append(
        f"Every check, failure and waiver is in this thread; `/ready {version}` lists all."
    )
    return " ".join(parts)


def publish_summary(ctx: Context, release: Release, progress: Progress) -> None:
    """Post the release's readiness message, or update it in place (chat.update)."""
    announce(ctx, summary_text(release.version, progress), message_key=key_of(release))


def post_event(ctx: Context, release: Release, text: str, progress: Progress) -> None:
    """One readiness event: the summary first (so the message exists to reply under, on the
    release's first activity too), then the event as a reply in its thread."""
    publish_summary(ctx, release, progress)
    announce(ctx, text, thread_key=key_of(release))


def channel_ref(channel: str) -> str:
    """`<#C0ROLLOUTS>` (Slack shows the channel's name, linked) for an id, else `#name`."""
    if CHANNEL_ID.match(channel):
        return f"<#{channel}>"
    return "#" + escape(channel.lstrip("#"))


def permalink(workspace_url: str, channel: str, ts: str) -> str:
    """The message's permalink in the form Slack gives (chat.getPermalink, "Copy link"):
    `https://acme.slack.com/archives/C0ROLLOUTS/p1700000000000100`."""
    return f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"


def pointer(ctx: Context, release: Release) -> str:
    """Where the release's readiness activity is, for the reply of the person who acted
    ("" when there is no rollouts channel, so no thread)."""
    channel = ctx.policy.channels.rollouts
    if not channel:
        return ""
    name = f"{escape(release.version)}'s checklist message"
    posted = get_message(key_of(release), session=ctx.session)
    workspace = ctx.policy.channels.workspace_url
    if posted is not None and workspace:
        link = permalink(workspace, posted.channel, posted.ts)
        return f"Its thread: <{link}|{name}> in {channel_ref(posted.channel)}."
    return f"Every change is in the thread of {name} in {channel_ref(channel)}."
