"""An open incident's lifecycle: status, lead, mitigated, resolve, step ticks, pins, resumes."""

from __future__ import annotations

from commands.access import require
from commands.announce import announce
from commands.core import Conflict, Context, NotFound, Request, UsageError
from commands.incident import paging, postmortem, proofs, views
from commands.incident.chat import chat_of
from commands.incident.parse import IncidentRef
from commands.incident.rules import (
    announce_incident,
    class_of,
    guidance_key,
    record,
    subject,
    tell,
    version_of,
)
from commands.text import escape, mention
from commands.wave.rules.pause import resume_rollout
from storage.incidents import (
    DuplicateEntry,
    get_incident,
    incident_in_channel,
    open_incidents,
    paused_rollouts,
    timeline_refs,
)
from storage.models import Incident, IncidentStatus, Rollout, TimelineEntry

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
    tell(
        ctx,
        incident,
        f"📣 Update on #{incident.id} from {mention(request.user_id)}: {escape(text)}",
    )


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
    paging.page(ctx, incident, "resolve")
    postmortem.schedule_archive(ctx, incident)
    await show_change(ctx, incident)
    return paused


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
    guidance = views.guidance(incident, cls, ticks_of(ctx, incident))
    text, blocks = proofs.with_proofs(ctx, incident.incident_class, *guidance)
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
