"""Incident rules: declaring, the lifecycle, the guidance checklist, pins, reminders.

Every change is a timeline entry and an audit event, and is said in the incident's channel and
in the thread of its announcement in the incidents channel.
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta

from commands.access import require
from commands.announce import announce
from commands.core import (
    Block,
    Conflict,
    Context,
    NotFound,
    Request,
    UsageError,
)
from commands.incident import views
from commands.incident.parse import DeclareArgs, IncidentRef, channel_name
from commands.incident.ports import Channel, ChatFailed, IncidentChat, NameTaken, chat_of
from commands.policy import IncidentClass
from commands.text import mention, span
from commands.wave.rules import pause_running_rollouts, resume_rollout
from storage.audit import Outcome, record_event
from storage.incidents import (
    DuplicateEntry,
    add_timeline_entry,
    count_declared_between,
    get_incident,
    incident_in_channel,
    link_paused_rollout,
    open_incidents,
    paused_rollouts,
    timeline_refs,
)
from storage.models import (
    Incident,
    IncidentStatus,
    PauseKind,
    Release,
    Rollout,
    TimelineEntry,
)
from storage.releases import get_release
from storage.rollouts import active_rollouts

COMMANDERS = "incident-commanders"
# How many `-2`, `-3` … suffixes are tried when a channel name is taken.
NAME_ATTEMPTS = 20
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def subject(incident: Incident) -> str:
    return f"incident:{incident.id}"


def guidance_key(incident: Incident) -> str:
    return f"incident:{incident.id}:guidance"


def announcement_key(incident: Incident) -> str:
    return f"incident:{incident.id}:announcement"


def class_of(ctx: Context, incident: Incident) -> IncidentClass:
    """The incident's class; one removed from the policy since is shown by its id."""
    found = ctx.policy.incidents.get(incident.incident_class)
    if found is not None:
        return found
    return IncidentClass(
        title=incident.incident_class, severity=incident.severity, first_action="-"
    )


def commanders(ctx: Context) -> list[str]:
    """The incident commanders who can be invited (users, not user groups)."""
    return [m for m in ctx.policy.roles.get(COMMANDERS, []) if _USER_ID.match(m)]


def tell(ctx: Context, incident: Incident, text: str, *, blocks: list[Block] | None = None) -> None:
    """Say a change in the incident's channel and in its announcement's thread."""
    if incident.channel:
        announce(ctx, text, channel=incident.channel, blocks=blocks)
    if ctx.policy.channels.incidents:
        announce(
            ctx,
            text,
            channel=ctx.policy.channels.incidents,
            thread_key=announcement_key(incident),
        )


def record(
    ctx: Context,
    incident: Incident,
    *,
    actor: str,
    action: str,
    kind: str,
    text: str,
    ref: str | None = None,
    update: bool = True,
) -> None:
    """One change: a timeline entry and an audit event. `update` marks it as a status update,
    which silences the reminder."""
    assert incident.id is not None
    now = ctx.now()
    add_timeline_entry(
        incident.id, actor=actor, kind=kind, text=text, at=now, ref=ref, session=ctx.session
    )
    record_event(
        actor=actor,
        action=action,
        subject=subject(incident),
        outcome=Outcome.ok,
        reason=text,
        at=now,
        session=ctx.session,
    )
    if update:
        incident.last_update_at = now
    ctx.session.add(incident)


# ---------------------------------------------------------------- declaring


async def create_channel(chat: IncidentChat, ctx: Context, summary: str) -> Channel:
    """`inc-YYYYMMDD-N-slug`, N the incident's number that day; a taken name gets a suffix."""
    now = ctx.now().astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    number = count_declared_between(day, day + timedelta(days=1), session=ctx.session) + 1
    prefix = ctx.policy.channels.incident_prefix
    for suffix in range(1, NAME_ATTEMPTS + 1):
        try:
            return await chat.create_channel(
                channel_name(prefix, now, number, summary, suffix=suffix)
            )
        except NameTaken:
            continue
    raise ChatFailed(f"every channel name for incident {number} of today is taken")


def affected_release(ctx: Context, given: str | None) -> str | None:
    """The release named, else the newest one with an active rollout."""
    if given:
        return given
    active = active_rollouts(session=ctx.session)
    return active[-1][1].version if active else None


async def declare_incident(
    ctx: Context, args: DeclareArgs, *, actor: str, alert_group_key: str | None = None
) -> Incident:
    """Create the channel, invite the people, set the topic, post the guidance, announce, and
    run the class's automations. Checks that can fail come before anything changes."""
    cls = ctx.policy.incidents[args.incident_class]
    if args.release and get_release(args.release, session=ctx.session) is None:
        raise NotFound(f"no release {args.release!r} is registered")
    chat = chat_of(ctx)
    now = ctx.now()
    channel = await create_channel(chat, ctx, args.summary)
    # A person declaring leads; an alert is led by the first incident commander.
    lead = actor if _USER_ID.match(actor) else next(iter(commanders(ctx)), None)
    incident = Incident(
        incident_class=args.incident_class,
        severity=args.severity,
        summary=args.summary,
        commander=lead,
        channel=channel.id,
        channel_name=channel.name,
        release=args.release,
        declared_by=actor,
        declared_at=now,
        last_update_at=now,
        alert_group_key=alert_group_key,
    )
    people = [actor, lead, *commanders(ctx)]
    invitees = list(dict.fromkeys(m for m in people if m and _USER_ID.match(m)))
    if invitees:
        await chat.invite(channel.id, invitees)
    await chat.set_topic(channel.id, views.topic(incident, cls))
    # Written after the Slack calls, so no database write lock is held while they run.
    ctx.session.add(incident)
    ctx.session.flush()
    record(
        ctx,
        incident,
        actor=actor,
        action="incident.declare",
        kind="declared",
        text=f"Declared sev{incident.severity} {incident.incident_class}: {incident.summary}",
    )
    text, blocks = views.guidance(incident, cls, {})
    announce(ctx, text, channel=channel.id, blocks=blocks, message_key=guidance_key(incident))
    announce_incident(ctx, incident)
    await run_automations(ctx, incident, cls, actor=actor)
    return incident


async def run_automations(
    ctx: Context, incident: Incident, cls: IncidentClass, *, actor: str
) -> None:
    if "pause_rollouts" in cls.automations:
        await pause_rollouts(ctx, incident, actor=actor)
    if "offer_rollback" in cls.automations:
        release = affected_release(ctx, incident.release)
        text, blocks = views.rollback_offer(incident, release)
        assert incident.channel is not None
        announce(ctx, text, channel=incident.channel, blocks=blocks)
        if release is not None:
            record(
                ctx,
                incident,
                actor="wavegate",
                action="incident.automation",
                kind="automation",
                text=f"Offered a rollback of {release}",
                update=False,
            )


async def pause_rollouts(ctx: Context, incident: Incident, *, actor: str) -> list[Rollout]:
    """Pause every running rollout with the incident as the reason, and remember which."""
    assert incident.id is not None
    reason = f"incident #{incident.id} ({incident.incident_class}): {incident.summary}"
    paused = await pause_running_rollouts(
        ctx, kind=PauseKind.incident, reason=reason[:2000], actor=actor
    )
    for rollout in paused:
        assert rollout.id is not None
        link_paused_rollout(incident.id, rollout.id, session=ctx.session)
    named = [(rollout, version_of(ctx, rollout)) for rollout in paused]
    text = views.paused_text(named)
    record(
        ctx,
        incident,
        actor="wavegate",
        action="incident.automation",
        kind="automation",
        text=text,
        update=False,
    )
    assert incident.channel is not None
    announce(ctx, text, channel=incident.channel)
    return paused


def version_of(ctx: Context, rollout: Rollout) -> str:
    release = ctx.session.get(Release, rollout.release_id)
    return release.version if release is not None else f"rollout {rollout.id}"


# ---------------------------------------------------------------- finding the incident


def find_incident(ctx: Context, request: Request, ref: IncidentRef | None, usage: str) -> Incident:
    """The incident named, else the one whose channel this is, else the only open one."""
    if ref is not None and ref.id is not None:
        found = get_incident(ref.id, session=ctx.session)
        if found is None:
            raise NotFound(f"no incident #{ref.id}", usage=usage)
        return found
    channel = ref.channel if ref is not None else request.channel_id
    if channel and (here := incident_in_channel(channel, session=ctx.session)) is not None:
        return here
    if ref is not None:
        raise NotFound(f"<#{ref.channel}> is not an incident channel", usage=usage)
    open_now = open_incidents(session=ctx.session)
    if not open_now:
        raise NotFound("no incident is open", usage=usage)
    if len(open_now) > 1:
        raise UsageError(views.which_incident(open_now), usage=usage)
    return open_now[0]


def still_open(ctx: Context, incident: Incident, action: str) -> None:
    """Lock the incident's row for this transaction (PostgreSQL: two people resolving at once
    make one resolution) and refuse a change to a resolved incident."""
    ctx.session.refresh(incident, with_for_update=True)
    if incident.status == IncidentStatus.resolved:
        raise Conflict(
            f"incident #{incident.id} is resolved already", action=action, subject=subject(incident)
        )


# ---------------------------------------------------------------- the lifecycle


def post_status(ctx: Context, incident: Incident, text: str, *, request: Request) -> None:
    require(ctx.policy, "incident.update", request, subject=subject(incident))
    still_open(ctx, incident, "incident.update")
    record(ctx, incident, actor=request.user_id, action="incident.status", kind="status", text=text)
    tell(ctx, incident, f"📣 Update on #{incident.id} from {mention(request.user_id)}: {text}")


async def set_lead(ctx: Context, incident: Incident, lead: str, *, request: Request) -> None:
    require(ctx.policy, "incident.update", request, subject=subject(incident))
    still_open(ctx, incident, "incident.update")
    if incident.commander == lead:
        raise Conflict(
            f"{mention(lead)} leads incident #{incident.id} already",
            action="incident.update",
            subject=subject(incident),
        )
    incident.commander = lead
    record(
        ctx,
        incident,
        actor=request.user_id,
        action="incident.lead",
        kind="lead",
        text=f"{mention(lead)} leads the incident now",
    )
    tell(
        ctx,
        incident,
        f"🧭 {mention(lead)} now leads #{incident.id} (set by {mention(request.user_id)})",
    )
    if incident.channel:
        await chat_of(ctx).invite(incident.channel, [lead])
    await show_change(ctx, incident)


async def mark_mitigated(ctx: Context, incident: Incident, *, request: Request) -> None:
    require(ctx.policy, "incident.update", request, subject=subject(incident))
    still_open(ctx, incident, "incident.update")
    if incident.status == IncidentStatus.mitigated:
        raise Conflict(
            f"incident #{incident.id} is mitigated already",
            action="incident.update",
            subject=subject(incident),
        )
    incident.status = IncidentStatus.mitigated
    incident.mitigated_at = ctx.now()
    record(
        ctx,
        incident,
        actor=request.user_id,
        action="incident.mitigated",
        kind="mitigated",
        text="Mitigated: the impact has stopped",
    )
    tell(
        ctx,
        incident,
        f"🩹 #{incident.id} mitigated by {mention(request.user_id)} — {views.durations(incident)}",
    )
    await show_change(ctx, incident)


async def resolve(
    ctx: Context, incident: Incident, summary: str | None, *, request: Request
) -> list[tuple[Rollout, str]]:
    require(ctx.policy, "incident.resolve", request, subject=subject(incident))
    still_open(ctx, incident, "incident.resolve")
    assert incident.id is not None
    incident.status = IncidentStatus.resolved
    incident.resolved_at = ctx.now()
    record(
        ctx,
        incident,
        actor=request.user_id,
        action="incident.resolve",
        kind="resolved",
        text=f"Resolved: {summary}" if summary else "Resolved",
    )
    paused = [(r, version_of(ctx, r)) for r in paused_rollouts(incident.id, session=ctx.session)]
    text, blocks = views.resolve_summary(incident, summary, paused)
    tell(ctx, incident, text, blocks=blocks)
    await show_change(ctx, incident)
    return paused


def announce_incident(ctx: Context, incident: Incident) -> None:
    """The announcement in the incidents channel; posted once, then updated in place."""
    if ctx.policy.channels.incidents:
        announce(
            ctx,
            views.announcement(incident, class_of(ctx, incident)),
            channel=ctx.policy.channels.incidents,
            message_key=announcement_key(incident),
        )


async def show_change(ctx: Context, incident: Incident) -> None:
    """A new status or lead shows in the channel's topic and the announcement."""
    if incident.channel:
        await chat_of(ctx).set_topic(
            incident.channel, views.topic(incident, class_of(ctx, incident))
        )
    announce_incident(ctx, incident)


# ---------------------------------------------------------------- checklist, pins, resumes


def ticks_of(ctx: Context, incident: Incident) -> dict[int, TimelineEntry]:
    assert incident.id is not None
    entries = timeline_refs(incident.id, "step:", session=ctx.session)
    return {int(entry.ref.removeprefix("step:")): entry for entry in entries if entry.ref}


def tick_step(ctx: Context, incident_id: int, step: int, *, request: Request) -> Incident:
    """Mark one step of the guidance done and redraw the checklist in place."""
    incident = get_incident(incident_id, session=ctx.session)
    if incident is None:
        raise NotFound(f"no incident #{incident_id}")
    require(ctx.policy, "incident.update", request, subject=subject(incident))
    cls = class_of(ctx, incident)
    if not 1 <= step <= len(cls.steps):
        raise NotFound(f"incident #{incident_id} has no step {step}")
    try:
        record(
            ctx,
            incident,
            actor=request.user_id,
            action="incident.step",
            kind="step",
            text=f"Step {step} done: {cls.steps[step - 1]}",
            ref=f"step:{step}",
        )
    except DuplicateEntry:
        done = ticks_of(ctx, incident)[step]
        raise Conflict(
            f"step {step} was ticked already by {mention(done.actor)} at {views.hhmm(done.at)}",
            action="incident.step",
            subject=subject(incident),
        ) from None
    text, blocks = views.guidance(incident, cls, ticks_of(ctx, incident))
    assert incident.channel is not None
    announce(ctx, text, channel=incident.channel, blocks=blocks, message_key=guidance_key(incident))
    return incident


def pin_message(
    ctx: Context, *, channel: str, ts: str, text: str | None, author: str | None, actor: str
) -> Incident | None:
    """A message pinned (or marked :pushpin:) in an incident channel joins its timeline once.
    Anywhere else it is none of our business: None."""
    incident = incident_in_channel(channel, session=ctx.session)
    if incident is None:
        return None
    said = (text or "(a message)").strip()
    by = f" (said by {mention(author)})" if author and author != actor else ""
    try:
        record(
            ctx,
            incident,
            actor=actor,
            action="incident.pin",
            kind="pin",
            text=f"📌 {said}{by}",
            ref=f"message:{ts}",
        )
    except DuplicateEntry:
        return None
    return incident


async def resume_paused_rollout(
    ctx: Context, incident_id: int, rollout_id: int, *, request: Request
) -> Rollout:
    """The Resume button of a resolve summary: only rollouts this incident paused."""
    incident = get_incident(incident_id, session=ctx.session)
    if incident is None:
        raise NotFound(f"no incident #{incident_id}")
    rollout = next(
        (r for r in paused_rollouts(incident_id, session=ctx.session) if r.id == rollout_id), None
    )
    if rollout is None:
        raise NotFound(f"incident #{incident_id} did not pause rollout {rollout_id}")
    require(ctx.policy, "wave.resume", request, subject=subject(incident))
    resumed = await resume_rollout(ctx, rollout, actor=request.user_id)
    record(
        ctx,
        incident,
        actor=request.user_id,
        action="incident.resume",
        kind="rollout",
        text=f"Resumed the rollout of {version_of(ctx, resumed)}",
        update=False,
    )
    return resumed


# ---------------------------------------------------------------- reminders


def remind_due(ctx: Context) -> list[Incident]:
    """Remind each open incident whose last update is older than its severity's cadence.
    Idempotent: a reminder is not repeated until another cadence has passed."""
    now = ctx.now()
    reminded: list[Incident] = []
    for incident in open_incidents(session=ctx.session):
        cadence = ctx.policy.reminders.get(incident.severity)
        if cadence is None or not incident.channel:
            continue
        since = max(incident.last_update_at, incident.reminded_at or incident.last_update_at)
        if now < since + cadence:
            continue
        quiet = span(now - incident.last_update_at)
        incident.reminded_at = now
        record(
            ctx,
            incident,
            actor="wavegate",
            action="incident.reminder",
            kind="reminder",
            text=f"Reminder: no update for {quiet}",
            update=False,
        )
        announce(
            ctx,
            f"⏰ {mention(incident.commander)} no update on #{incident.id} for {quiet} "
            f"(sev{incident.severity} updates are due every {span(cadence)}). "
            "Post one with `/incident status TEXT`.",
            channel=incident.channel,
        )
        reminded.append(incident)
    return reminded
