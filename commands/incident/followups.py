"""Follow-ups: what an incident taught, owned and dated, closed by done or waive, reminded."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from commands.access import require
from commands.announce import announce
from commands.core import Conflict, Context, NotFound, Reply, Request, UsageError
from commands.incident.rules import record, subject
from commands.text import escape, mention, parse_mention
from commands.unit import perform
from storage.audit import Outcome, record_event
from storage.followups import add_followup, followup_from_message, get_followup, open_followups
from storage.incident_loop import FollowUp, FollowUpState
from storage.incidents import incident_in_channel
from storage.models import Incident

TEXT_LIMIT = 2000
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_due(word: str, usage: str) -> datetime:
    """`2026-12-05` → that day, 00:00 UTC; a follow-up is overdue from the next day."""
    match = _DATE.match(word)
    try:
        if match is None:
            raise ValueError(word)
        return datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=UTC)
    except ValueError:
        raise UsageError(f"invalid date {word[:20]!r}; use YYYY-MM-DD", usage=usage) from None


def parse_followup(words: list[str], usage: str) -> tuple[str, str | None, datetime | None]:
    """`TEXT… [@owner] [due DATE]` (owner and due in either order, at the end)."""
    rest = list(words)
    owner: str | None = None
    due: datetime | None = None
    for _ in range(2):
        if len(rest) >= 2 and rest[-2].lower() == "due" and due is None:
            due, rest = parse_due(rest[-1], usage), rest[:-2]
        elif rest and owner is None and (user := parse_mention(rest[-1])) is not None:
            owner, rest = user, rest[:-1]
    text = " ".join(rest).strip()
    if not text:
        raise UsageError("missing TEXT: what must be done?", usage=usage)
    if len(text) > TEXT_LIMIT:
        raise UsageError(f"the follow-up is longer than {TEXT_LIMIT} characters", usage=usage)
    return text, owner, due


def followup_id(word: str, usage: str) -> int:
    text = word.removeprefix("#").removeprefix("F").removeprefix("f")
    if not text.isdigit():
        raise UsageError(
            f"{word[:20]!r} is not a follow-up number (see /incident followups)", usage=usage
        )
    return int(text)


def add(
    ctx: Context,
    incident: Incident,
    text: str,
    *,
    owner: str | None,
    due: datetime | None,
    actor: str,
    source_ts: str | None = None,
) -> FollowUp:
    """Record a follow-up on the incident's timeline; a message is taken once."""
    assert incident.id is not None
    if source_ts is not None and (
        found := followup_from_message(incident.id, source_ts, session=ctx.session)
    ):
        raise Conflict(
            f"that message is follow-up {found.id} of #{incident.id} already",
            action="incident.followup",
            subject=subject(incident),
        )
    followup = add_followup(
        FollowUp(
            incident_id=incident.id,
            text=text,
            owner=owner,
            due=due,
            created_by=actor,
            created_at=ctx.now(),
            source_ts=source_ts,
        ),
        session=ctx.session,
    )
    record(
        ctx,
        incident,
        actor=actor,
        action="incident.followup",
        kind="followup",
        text=f"Follow-up {followup.id}: {text}" + (f" (owner {mention(owner)})" if owner else ""),
        update=False,
    )
    if incident.channel:
        announce(
            ctx,
            f"📝 Follow-up {followup.id} of #{incident.id} added by {mention(actor)}: "
            f"{line(followup)}",
            channel=incident.channel,
        )
    return followup


def close(
    ctx: Context, number: int, state: FollowUpState, *, request: Request, reason: str | None
) -> FollowUp:
    """`done` (permission incident.followup) or `waive REASON` (incident.followup.waive)."""
    followup = get_followup(number, session=ctx.session)
    if followup is None:
        raise NotFound(f"no follow-up {number}")
    target = f"followup:{number}"
    action = "incident.followup" if state == FollowUpState.done else "incident.followup.waive"
    require(ctx.policy, action, request, subject=target)
    if followup.state != FollowUpState.open:
        raise Conflict(
            f"follow-up {number} is {followup.state} already", action=action, subject=target
        )
    followup.state, followup.closed_by = state, request.user_id
    followup.closed_at, followup.reason = ctx.now(), reason
    ctx.session.add(followup)
    record_event(
        actor=request.user_id,
        action=f"{action}.{state}",
        subject=target,
        outcome=Outcome.ok,
        reason=reason,
        detail=f"incident:{followup.incident_id}",
        at=ctx.now(),
        session=ctx.session,
    )
    return followup


def overdue(followup: FollowUp, now: datetime) -> bool:
    return followup.due is not None and now.astimezone(UTC).date() > followup.due.date()


def line(followup: FollowUp, now: datetime | None = None) -> str:
    """`Rotate the provider key · owner @ana · due 2026-12-05 (overdue)`, escaped for Slack."""
    parts = [escape(followup.text)]
    parts.append(f"owner {mention(followup.owner)}" if followup.owner else "no owner")
    if followup.due is not None:
        due = f"due {followup.due:%Y-%m-%d}"
        if now is not None and followup.state == FollowUpState.open and overdue(followup, now):
            due += " (overdue)"
        parts.append(due)
    if followup.state != FollowUpState.open:
        parts.append(
            str(followup.state) + (f": {escape(followup.reason)}" if followup.reason else "")
        )
    return " · ".join(parts)


def open_by_owner(ctx: Context) -> list[tuple[FollowUp, Incident]]:
    """Open follow-ups, overdue first, then by owner and due date."""
    now = ctx.now()
    found = open_followups(session=ctx.session)
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(
        found,
        key=lambda pair: (
            not overdue(pair[0], now),
            pair[0].owner or "~",
            pair[0].due or far,
            pair[0].id or 0,
        ),
    )


def remind_due_followups(ctx: Context) -> list[FollowUp]:
    """Tell each owner once when their follow-up falls due (in a direct message)."""
    now = ctx.now()
    reminded: list[FollowUp] = []
    for followup, incident in open_followups(session=ctx.session):
        if followup.due is None or followup.owner is None or followup.reminded_at is not None:
            continue
        if now.astimezone(UTC).date() < followup.due.date():
            continue
        followup.reminded_at = now
        ctx.session.add(followup)
        announce(
            ctx,
            f"⏰ Follow-up {followup.id} of incident #{incident.id} is due: {line(followup, now)}. "
            f"Close it with `/incident followup done {followup.id}`.",
            channel=followup.owner,
        )
        reminded.append(followup)
    return reminded


SHORTCUT = "incident.followup.add"


async def add_from_message(
    ctx: Context, request: Request, *, channel: str, ts: str, text: str | None
) -> Reply:
    """The "Add as follow-up" message shortcut: the message becomes a follow-up of the incident
    whose channel it is in, owned by whoever used the shortcut. One unit of work."""

    async def work(ctx: Context) -> Reply:
        incident = incident_in_channel(channel, session=ctx.session)
        if incident is None:
            raise UsageError("Add as follow-up works on messages in an incident's channel")
        require(ctx.policy, "incident.followup", request, subject=subject(incident))
        said = " ".join((text or "").split())[:TEXT_LIMIT]
        if not said:
            raise UsageError("that message has no text to make a follow-up of")
        added = add(
            ctx,
            incident,
            said,
            owner=request.user_id,
            due=None,
            actor=request.user_id,
            source_ts=ts,
        )
        return Reply(
            f"Follow-up {added.id} added to #{incident.id}: {line(added)}. Close it with "
            f"`/incident followup done {added.id}`."
        )

    return await perform(request.user_id, ctx, work, action="incident.followup")
