"""What a change leaves behind: the status message, events in the rollout's thread, audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from commands.announce import announce
from commands.core import Context
from commands.text import mention
from commands.wave import views
from commands.wave.rules.base import SYSTEM, subject_of, thread_key
from commands.wave.rules.gate import incident_blockers, view_of
from storage.audit import Outcome, record_event
from storage.models import Release, Rollout
from storage.outbox import last_post_at

# How often a status message shows fresh values when nothing else changed.
STATUS_REFRESH = timedelta(minutes=5)


def publish_status(ctx: Context, rollout: Rollout, release: Release | None = None) -> None:
    """The rollout's one status message, created or updated in place (chat.update through the
    outbox's message key), its buttons following the rollout's state (views.status_buttons).
    Every change of state calls this: claim, settle, release of a claim, verdict change."""
    view = replace(view_of(ctx, rollout, release), blocked=bool(incident_blockers(ctx)))
    announce(
        ctx,
        views.status_text(view),
        blocks=views.status_blocks(view),
        message_key=thread_key(rollout),
    )


def refresh_status(ctx: Context, rollout: Rollout) -> bool:
    """New values with no change of state: update the status message at most every
    STATUS_REFRESH, so a poll every minute of many rollouts stays within Slack's rate limits.
    Changes of state publish at once (publish_status)."""
    last = last_post_at(thread_key(rollout), session=ctx.session)
    if last is not None and ctx.now() - last < STATUS_REFRESH:
        return False
    publish_status(ctx, rollout)
    return True


def post_event(ctx: Context, rollout: Rollout, text: str, buttons: Sequence[Any] = ()) -> None:
    blocks = views.with_buttons(text, buttons) if buttons else None
    announce(ctx, text, blocks=blocks, thread_key=thread_key(rollout))


def audit(
    ctx: Context,
    release: Release,
    action: str,
    *,
    actor: str,
    reason: str | None = None,
    detail: str | None = None,
) -> None:
    record_event(
        actor=actor,
        action=action,
        subject=subject_of(release),
        outcome=Outcome.ok,
        reason=reason,
        detail=detail,
        at=ctx.now(),
        session=ctx.session,
    )


def who(actor: str) -> str:
    return "wavegate" if actor == SYSTEM else mention(actor)
