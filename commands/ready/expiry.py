"""Checklist expiry: an item whose pass expires soon (`max_age`) is announced once, in the
release's readiness thread, naming its owner."""

from __future__ import annotations

from datetime import timedelta

from commands.core import Context
from commands.ready.checklist import ItemState, ItemStatus, announce_event, evaluate, who
from commands.text import ago
from storage.audit import Outcome, event_exists, record_event
from storage.models import Release
from storage.releases import unfinished_releases


def expiring_items(ctx: Context, *, within: timedelta) -> list[tuple[Release, ItemStatus]]:
    """Items of open releases whose pass expires within `within` (or has expired), announced
    once per recorded result, so the job can run any number of times."""
    now = ctx.now()
    found: list[tuple[Release, ItemStatus]] = []
    for release in unfinished_releases(session=ctx.session):
        for status in evaluate(release, ctx).items:
            max_age = status.item.max_age
            if max_age is None or status.at is None:
                continue
            if status.state not in (ItemState.passed, ItemState.waived, ItemState.expired):
                continue
            expires = status.at + max_age
            if expires > now + within:
                continue
            subject = f"release:{release.version}"
            detail = f"{status.item.id}@{status.at.isoformat()}"
            if event_exists(
                action="ready.remind", subject=subject, detail=detail, session=ctx.session
            ):
                continue
            record_event(
                actor="wavegate",
                action="ready.remind",
                subject=subject,
                outcome=Outcome.ok,
                detail=detail,
                at=now,
                session=ctx.session,
            )
            owner = f" {who(status.item.owner)}" if status.item.owner else ""
            verb = "expired" if expires <= now else "expires"
            announce_event(
                release,
                f"⌛{owner} *{status.item.id}* of {release.version} {verb} {ago(expires, now)}: "
                f"{status.item.title}. Re-check it with `/ready check {release.version} "
                f"{status.item.id} EVIDENCE`.",
                ctx,
            )
            found.append((release, status))
    return found
