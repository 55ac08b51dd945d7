"""Readiness checklist rules: each item's state for a release, and recording results."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from commands.core import Conflict, Context, GateClosed, NotFound, UsageError
from commands.policy import ChecklistItem, Verify
from commands.ready.thread import Progress, post_event
from commands.text import escape, plural, said
from storage.audit import Outcome, record_event
from storage.checks import latest_results, record_check
from storage.followups import gating_followups
from storage.models import CheckResult, CheckStatus, Release, ReleaseState
from storage.releases import DuplicateRelease, create_release, get_release

# Command words (every family's subcommands, and help) cannot name a release:
# tests/commands/ready checks this covers commands/router.py's families.
RESERVED = frozenset(
    [
        "help",
        "new",
        "check",
        "fail",
        "waive",
        "status",
        "start",
        "promote",
        "pause",
        "resume",
        "history",
        "plan",
        "list",
        "declare",
        "update",
        "lead",
        "mitigated",
        "resolve",
        "followup",
        "followups",
        "role",
        "stakeholders",
        "review",
        "postmortem",
    ]
)
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]{0,99}$")
FINISHED = {ReleaseState.complete, ReleaseState.rolled_back}
ACTION_OF = {
    CheckStatus.passed: "ready.check",
    CheckStatus.failed: "ready.fail",
    CheckStatus.waived: "ready.waive",
}


class ItemState(StrEnum):
    passed = "passed"
    waived = "waived"
    failed = "failed"
    expired = "expired"
    pending = "pending"

    @property
    def done(self) -> bool:
        return self in (ItemState.passed, ItemState.waived)


@dataclass(frozen=True)
class ItemStatus:
    item: ChecklistItem
    state: ItemState
    at: datetime | None = None
    actor: str | None = None
    evidence: str | None = None
    reason: str | None = None
    # For CI items: each check's state, in the policy's order.
    checks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Checklist:
    release: Release
    items: list[ItemStatus]

    @property
    def complete(self) -> bool:
        return all(status.state.done for status in self.items)

    @property
    def missing(self) -> list[ItemStatus]:
        return [status for status in self.items if not status.state.done]

    @property
    def progress(self) -> Progress:
        def named(state: ItemState) -> tuple[str, ...]:
            return tuple(s.item.id for s in self.items if s.state == state)

        return Progress(
            total=len(self.items),
            done=len(self.items) - len(self.missing),
            failed=named(ItemState.failed),
            expired=named(ItemState.expired),
            pending=named(ItemState.pending),
        )


def announce_event(release: Release, text: str, ctx: Context) -> None:
    """A readiness event, as a reply in the release's thread; its summary message follows."""
    post_event(ctx, release, text, evaluate(release, ctx).progress)


def _from_result(item: ChecklistItem, result: CheckResult, now: datetime) -> ItemStatus:
    state = ItemState(result.status)
    if state.done and item.max_age is not None and result.recorded_at + item.max_age < now:
        state = ItemState.expired
    return ItemStatus(item, state, result.recorded_at, result.actor, result.evidence, result.reason)


def _ci_status(
    item: ChecklistItem, latest: dict[tuple[str, str], CheckResult], now: datetime
) -> ItemStatus | None:
    """An item verified by CI passes when every listed check's newest result passed."""
    results = [latest.get((item.id, check)) for check in item.verify.checks]
    seen = [r for r in results if r is not None]
    if not seen:
        return None
    states = tuple(
        (check, r.status if r is not None else "pending")
        for check, r in zip(item.verify.checks, results, strict=True)
    )
    newest = max(seen, key=lambda r: (r.recorded_at, r.id or 0))
    failed = [r for r in seen if r.status == CheckStatus.failed]
    if failed:
        first = failed[0]
        return ItemStatus(
            item,
            ItemState.failed,
            newest.recorded_at,
            first.actor,
            first.evidence,
            f"{first.check} failed",
            states,
        )
    if len(seen) < len(results):
        return ItemStatus(
            item, ItemState.pending, newest.recorded_at, newest.actor, None, None, states
        )
    oldest = min(seen, key=lambda r: r.recorded_at)
    state = ItemState.passed
    if item.max_age is not None and oldest.recorded_at + item.max_age < now:
        state = ItemState.expired
    return ItemStatus(item, state, newest.recorded_at, newest.actor, newest.evidence, None, states)


def evaluate(release: Release, ctx: Context) -> Checklist:
    """Every checklist item's state for a release; the newest result wins."""
    assert release.id is not None
    latest = latest_results(release.id, session=ctx.session)
    now = ctx.now()
    statuses: list[ItemStatus] = []
    for item in ctx.policy.checklist:
        own = latest.get((item.id, ""))
        candidates: list[ItemStatus] = []
        if own is not None:
            candidates.append(_from_result(item, own, now))
        if item.verify.by == "ci" and (ci := _ci_status(item, latest, now)) is not None:
            candidates.append(ci)
        if candidates:
            newest = max(candidates, key=lambda s: s.at or now)
            statuses.append(newest)
        else:
            statuses.append(ItemStatus(item, ItemState.pending))
    if release.state == ReleaseState.candidate:
        statuses += followup_items(ctx)
    return Checklist(release, statuses)


def followup_items(ctx: Context) -> list[ItemStatus]:
    """Open follow-ups of resolved incidents, as items of every candidate's checklist where the
    policy says so (`followups: {gate: true}`): an incident's lesson reaches the next release.
    They are closed with `/incident followup done N` (or waived), never with `/ready`."""
    if not ctx.policy.followups.gate:
        return []
    items: list[ItemStatus] = []
    for followup, incident in gating_followups(session=ctx.session):
        if not ctx.policy.followups.gates(incident.incident_class):
            continue
        item = ChecklistItem(
            id=f"followup-{followup.id}",
            title=f"Follow-up {followup.id} of incident #{incident.id} "
            f"({incident.incident_class}): {escape(followup.text)}"[:300],
            owner=followup.owner,
            verify=Verify(by="person"),
        )
        reason = f"close it with `/incident followup done {followup.id}` (or waive it)"
        items.append(ItemStatus(item, ItemState.pending, followup.created_at, None, None, reason))
    return items


def require_complete(release: Release, ctx: Context, *, action: str) -> None:
    """The start gate: every item passed or waived (and not expired)."""
    checklist = evaluate(release, ctx)
    if not checklist.complete:
        missing = ", ".join(f"{s.item.id} ({s.state})" for s in checklist.missing)
        raise GateClosed(
            f"the readiness checklist of {release.version} is incomplete: {missing}",
            action=action,
            subject=f"release:{release.version}",
        )


# ---------------------------------------------------------------- changes


def register_release(version: str, ctx: Context, *, actor: str) -> Release:
    if version.lower() in RESERVED:
        raise UsageError(
            f"{version!r} is a command word, so it cannot name a release (it would read as the "
            "command): choose another, e.g. 2026.11.27-1"
        )
    if not VERSION.match(version):
        raise UsageError(
            f"{version[:120]!r} is not a release version: use letters, digits and . _ + - "
            "(at most 100 characters), e.g. 2026.11.27-1 or a git sha"
        )
    try:
        release = create_release(version, actor=actor, at=ctx.now(), session=ctx.session)
    except DuplicateRelease:
        raise Conflict(
            f"release {version} is already registered",
            action="ready.new",
            subject=f"release:{version}",
        ) from None
    record_event(
        actor=actor,
        action="ready.new",
        subject=f"release:{version}",
        outcome=Outcome.ok,
        at=ctx.now(),
        session=ctx.session,
    )
    count = plural(len(ctx.policy.checklist), "item")
    announce_event(
        release, f"{who(actor)} registered release candidate *{version}* ({count}).", ctx
    )
    return release


def find_item(ctx: Context, item_id: str) -> ChecklistItem:
    item = ctx.policy.item(item_id)
    if item is None:
        known = (
            ", ".join(i.id for i in ctx.policy.checklist) or "none (the policy has no checklist)"
        )
        raise UsageError(f"the checklist has no item {item_id!r}; items: {known}")
    return item


def release_named(version: str, ctx: Context) -> Release:
    release = get_release(version, session=ctx.session)
    if release is None:
        raise NotFound(f"no release {version!r} is registered")
    return release


def record_result(
    release: Release,
    item: ChecklistItem,
    status: CheckStatus,
    ctx: Context,
    *,
    actor: str,
    check: str = "",
    evidence: str | None = None,
    reason: str | None = None,
) -> CheckResult:
    """Record one result and its audit event, and announce it; the gatekeeping is the caller's."""
    assert release.id is not None
    subject = f"release:{release.version}"
    action = ACTION_OF[status]
    if release.state in FINISHED:
        raise Conflict(
            f"release {release.version} is {said(release.state)}; its checklist is closed",
            action=action,
            subject=subject,
        )
    result = record_check(
        release_id=release.id,
        item=item.id,
        check=check,
        status=status,
        actor=actor,
        at=ctx.now(),
        evidence=evidence,
        reason=reason,
        session=ctx.session,
    )
    what = f"{item.id}/{check}" if check else item.id
    record_event(
        actor=actor,
        action=action,
        subject=subject,
        outcome=Outcome.ok,
        reason=reason,
        detail=f"{what} {status}" + (f" evidence={evidence}" if evidence else ""),
        at=ctx.now(),
        session=ctx.session,
    )
    icon = {"passed": "✅", "failed": "❌", "waived": "⚪"}[status]
    line = f"{icon} {who(actor)} marked *{what}* {status} for {release.version}"
    # A bare URL is linked by Slack as it stands; a label around it would be the sender's.
    if reason:
        line += f": {escape(reason)}"
    elif evidence:
        line += f" (evidence: {escape(evidence)})"
    announce_event(release, line, ctx)
    return result


def check_by_person(item: ChecklistItem, *, evidence: str | None, subject: str) -> None:
    """Items verified by CI are not ticked by hand (CI reports them, or they are waived); items
    verified by a person may need evidence."""
    if item.verify.by == "ci":
        raise GateClosed(
            f"{item.id} is verified by CI (checks: {', '.join(item.verify.checks)}); CI reports "
            "each with POST /api/v1/checks. A release manager can waive it with a reason.",
            action="ready.check",
            subject=subject,
        )
    if item.verify.evidence == "required" and not evidence:
        raise UsageError(f"{item.id} needs evidence: add a link to the proof after the item")


def who(actor: str) -> str:
    return f"<@{actor}>" if actor[:1] in {"U", "W"} else escape(actor)


def record_ci_result(
    version: str,
    item_id: str,
    check: str | None,
    status: CheckStatus,
    ctx: Context,
    *,
    actor: str,
    evidence: str | None = None,
) -> CheckResult:
    """A result reported by CI (POST /api/v1/checks): for a CI item's check, or a person item."""
    release = release_named(version, ctx)
    item = find_item(ctx, item_id)
    if item.verify.by == "ci":
        if not check:
            raise UsageError(
                f"{item.id} is verified by CI: name the check ({', '.join(item.verify.checks)})"
            )
        if check not in item.verify.checks:
            raise UsageError(
                f"{item.id} has no check {check!r}; checks: {', '.join(item.verify.checks)}"
            )
    elif check:
        by = "a person" if item.verify.by == "person" else "metrics"
        raise UsageError(f"{item.id} is verified by {by}, not by CI checks")
    elif item.verify.by == "person" and item.verify.evidence == "required" and not evidence:
        raise UsageError(f"{item.id} needs evidence")
    return record_result(
        release, item, status, ctx, actor=actor, check=check or "", evidence=evidence
    )
