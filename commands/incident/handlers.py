"""`/incident`: declare an incident, keep its timeline, resolve it, review the month."""

from __future__ import annotations

from commands.access import require
from commands.core import Family, Invocation, Reply
from commands.incident import lifecycle, views
from commands.incident.declare import declare_incident
from commands.incident.parse import (
    classes_line,
    parse_declare,
    parse_month,
    take_incident_ref,
    unknown_class,
)
from commands.incident.review import build_review, render_review
from commands.text import mention, parse_mention
from storage.incidents import open_incidents
from storage.models import Incident
from storage.rollouts import active_rollouts

family = Family(
    "incident", "declare incidents, first-response guidance, lifecycle, review", default="list"
)
STATUS_LIMIT = 3000


@family.command("list", "/incident")
async def list_open(inv: Invocation) -> Reply:
    """Every open incident: class, severity, status, lead, channel and age."""
    if inv.words:
        known = ", ".join(family.subcommands)
        raise inv.usage_error(f"/incident has no command {inv.words[0][:40]!r}; commands: {known}")
    return views.open_list(open_incidents(session=inv.ctx.session), inv.ctx.now())


async def _open_form(inv: Invocation, summary: str = "") -> bool:
    releases = [release.version for _, release in active_rollouts(session=inv.ctx.session)]
    form = views.declare_form(inv.ctx.policy, summary=summary, releases=releases)
    chat = inv.ctx.ports.chat
    return bool(chat is not None and await chat.open_modal(inv.request.trigger_id, form))


@family.command("declare", "/incident declare [CLASS] [SEV] SUMMARY", answers_in_ack=False)
async def declare(inv: Invocation) -> Reply:
    """Declare an incident: its channel, first-response guidance and the class's automations.

    Creates a channel with the declarer and the commanders, posts the class's first action and
    steps as a checklist, announces it in the incidents channel, and runs the class's
    automations (pausing rollouts, offering a rollback).

    SEV is 1 to 4 or sev1 to sev4 (1 is the worst), by default the class's. With no arguments a
    form opens.
    """
    ctx = inv.ctx
    require(ctx.policy, "incident.declare", inv.request, subject="incident:new")
    if not inv.words:
        if await _open_form(inv):
            return Reply("Fill in the form to declare the incident.")
        raise inv.usage_error(f"give the CLASS and a SUMMARY; {classes_line(ctx.policy)}")
    if inv.words[0].lower() not in ctx.policy.incidents:
        # Slack shows the form too, with what was typed as the summary.
        await _open_form(inv, summary=" ".join(inv.words))
        raise unknown_class(inv.words[0], ctx.policy, inv.sub.usage)
    args = parse_declare(inv.words, ctx.policy, inv.sub.usage)
    incident = await declare_incident(ctx, args, actor=inv.actor)
    return Reply(
        f"Declared incident #{incident.id} (sev{incident.severity} {incident.incident_class}) "
        f"in {views.channel_link(incident)}; you lead it until `/incident lead @user`."
    )


def _target(inv: Invocation) -> tuple[Incident, list[str]]:
    ref, rest = take_incident_ref(inv.words)
    return lifecycle.find_incident(inv.ctx, inv.request, ref, inv.sub.usage), rest


@family.command("status", "/incident status [#ID] TEXT")
async def status(inv: Invocation) -> Reply:
    """Post a status update to the incident's timeline (it silences the update reminder).

    Inside an incident's channel #ID is implied; elsewhere, when only one incident is open.
    """
    ref, rest = take_incident_ref(inv.words)
    text = " ".join(rest).strip()
    if not text:
        raise inv.usage_error("missing TEXT: what is the status?")
    if len(text) > STATUS_LIMIT:
        raise inv.usage_error(f"the update is longer than {STATUS_LIMIT} characters")
    incident = lifecycle.find_incident(inv.ctx, inv.request, ref, inv.sub.usage)
    lifecycle.post_status(inv.ctx, incident, text, request=inv.request)
    return Reply(f"Update added to the timeline of #{incident.id}.")


@family.command("lead", "/incident lead [#ID] @USER", answers_in_ack=False)
async def lead(inv: Invocation) -> Reply:
    """Hand the incident's lead (commander) to someone; they are invited to the channel."""
    ref, rest = take_incident_ref(inv.words)
    if len(rest) != 1:
        raise inv.usage_error("name exactly one person, as @user")
    user = parse_mention(rest[0])
    if user is None:
        raise inv.usage_error(f"{rest[0][:40]!r} is not a Slack user: mention them as @user")
    incident = lifecycle.find_incident(inv.ctx, inv.request, ref, inv.sub.usage)
    await lifecycle.set_lead(inv.ctx, incident, user, request=inv.request)
    return Reply(f"{mention(user)} leads incident #{incident.id} now.")


@family.command("mitigated", "/incident mitigated [#ID]", answers_in_ack=False)
async def mitigated(inv: Invocation) -> Reply:
    """Mark the impact as stopped; resolve once the cause is fixed."""
    incident, rest = _target(inv)
    if rest:
        raise inv.usage_error("mitigated takes no text; post details with /incident status")
    await lifecycle.mark_mitigated(inv.ctx, incident, request=inv.request)
    return Reply(f"Incident #{incident.id} is mitigated. {views.durations(incident)}.")


@family.command("resolve", "/incident resolve [#ID] [SUMMARY]", answers_in_ack=False)
async def resolve(inv: Invocation) -> Reply:
    """Resolve the incident; it may skip `mitigated`.

    Posts the durations and the rollouts the incident paused, with Resume buttons: nothing
    resumes by itself."""
    incident, rest = _target(inv)
    summary = " ".join(rest).strip() or None
    if summary and len(summary) > STATUS_LIMIT:
        raise inv.usage_error(f"the summary is longer than {STATUS_LIMIT} characters")
    paused = await lifecycle.resolve(inv.ctx, incident, summary, request=inv.request)
    text = f"Incident #{incident.id} is resolved. {views.durations(incident)}."
    if paused:
        text += f" It paused {len(paused)} rollout(s): the summary in its channel can resume them."
    return Reply(text)


@family.command("review", "/incident review [YYYY-MM]")
async def review(inv: Invocation) -> Reply:
    """Review a month's incidents (default: this month so far).

    Classes by count, median time to mitigate and to resolve, links to the incidents, and the
    recurring classes that have no automation yet."""
    if len(inv.words) > 1:
        raise inv.usage_error("give at most one month, as YYYY-MM")
    if inv.words:
        start, end = parse_month(inv.words[0], inv.sub.usage)
    else:
        now = inv.ctx.now()
        start, end = parse_month(f"{now:%Y-%m}", inv.sub.usage)
    return render_review(build_review(inv.ctx, start, end))
