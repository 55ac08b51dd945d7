"""Declaring an incident: its channel, the people, the guidance, the announcement, automations."""

from __future__ import annotations

from datetime import UTC, timedelta

from commands.announce import announce
from commands.core import Context, NotFound
from commands.incident import paging, proofs, views
from commands.incident.chat import ChatFailed, chat_of
from commands.incident.parse import DeclareArgs, channel_name
from commands.incident.rules import (
    USER_ID,
    announce_incident,
    commanders,
    guidance_key,
    record,
    version_of,
)
from commands.policy import IncidentClass
from commands.ports import Channel, IncidentChat, NameTaken
from commands.wave.rules.actuation import idle
from commands.wave.rules.pause import pause_running_rollouts
from storage.incidents import count_declared_between
from storage.models import Incident, PauseKind, Rollout
from storage.releases import get_release
from storage.rollouts import active_rollouts

# How many `-2`, `-3` … suffixes are tried when a channel name is taken.
NAME_ATTEMPTS = 20


async def create_channel(chat: IncidentChat, ctx: Context, summary: str) -> Channel:
    """`inc-YYYYMMDD-N-slug`, N the incident's number that day; a taken name gets a suffix.

    The unit of work's transaction is ended before Slack is called (its reads done, and what
    it wrote so far committed), so no pooled connection or SQLite lock is held while Slack
    answers; the incident's own rows are written after the Slack calls."""
    now = ctx.now().astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    number = count_declared_between(day, day + timedelta(days=1), session=ctx.session) + 1
    idle(ctx)
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
    lead = actor if USER_ID.match(actor) else next(iter(commanders(ctx)), None)
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
    invitees = list(dict.fromkeys(m for m in people if m and USER_ID.match(m)))
    if invitees:
        await chat.invite(channel.id, invitees)
    await chat.set_topic(channel.id, views.topic(incident, cls))
    # Written after the Slack calls (no transaction is open while they run: create_channel).
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
    text, blocks = proofs.with_proofs(
        ctx, incident.incident_class, *views.guidance(incident, cls, {})
    )
    announce(ctx, text, channel=channel.id, blocks=blocks, message_key=guidance_key(incident))
    announce_incident(ctx, incident)
    paging.page(ctx, incident, "trigger")
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
    """Pause every running rollout with the incident as the reason (each linked to it when its
    pause settles); one with a promote or resume in flight is paused right after it settles."""
    assert incident.id is not None
    reason = f"incident #{incident.id} ({incident.incident_class}): {incident.summary}"
    done = await pause_running_rollouts(
        ctx, kind=PauseKind.incident, reason=reason[:2000], actor=actor, incident=incident.id
    )
    named = [(rollout, version_of(ctx, rollout)) for rollout in done.paused]
    lines = [views.paused_text(named)]
    lines += [
        f"Queued a pause of {version_of(ctx, r)} right after {what}." for r, what in done.queued
    ]
    lines += [
        f"The deploy system did not confirm the pause of {version_of(ctx, r)}: it is still "
        "running (its thread offers Retry)."
        for r in done.failed
    ]
    text = "\n".join(lines)
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
    return done.paused
