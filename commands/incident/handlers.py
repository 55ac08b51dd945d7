"""`/incident`: declare an incident, keep its timeline, resolve it, review the month."""

from __future__ import annotations

from commands.access import require
from commands.core import Family, Invocation, Reply
from commands.incident import followups, lifecycle, postmortem, roles, views
from commands.incident.declare import declare_incident
from commands.incident.improve import build_full_review
from commands.incident.improve_text import render_full_review
from commands.incident.parse import (
    classes_line,
    parse_declare,
    parse_month,
    take_incident_ref,
    unknown_class,
)
from commands.text import mention, parse_mention, plural
from commands.wave.rules.actuation import idle
from storage.incident_loop import FollowUpState
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
    idle(inv.ctx)  # the read transaction ends before Slack is called
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
        f"in {views.channel_link(incident)}; you lead it until `/incident lead @user`. "
        f"Severity: {args.severity_words}."
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
        text += (
            f" It paused {plural(len(paused), 'rollout')}: the summary in its channel can "
            "resume them."
        )
    return Reply(text)


@family.command("review", "/incident review [YYYY-MM]")
async def review(inv: Invocation) -> Reply:
    """Review a month's incidents (default: this month so far) and say what to change.

    Classes by count, median and p90 time to mitigate and to resolve against the month before
    (↑ slower, ↓ faster), the policy change for each recurring class done by hand, follow-up
    completion, rollouts paused or rolled back by cause, each release's quality and cost
    (completion success, time to deployable, fix loops, cost per generation), and a retire
    list. Also GET /api/v1/review?month=YYYY-MM."""
    if len(inv.words) > 1:
        raise inv.usage_error("give at most one month, as YYYY-MM")
    if inv.words:
        start, _ = parse_month(inv.words[0], inv.sub.usage)
    else:
        now = inv.ctx.now()
        start, _ = parse_month(f"{now:%Y-%m}", inv.sub.usage)
    return render_full_review(build_full_review(inv.ctx, start), inv.ctx)


# ---------------------------------------------------------------- the improvement loop


@family.command("followup", "/incident followup [#ID] TEXT [@owner] [due YYYY-MM-DD]")
async def followup(inv: Invocation) -> Reply:
    """Add a follow-up to the incident (or close one: `followup done N`, `followup waive N
    REASON`).

    Where the policy says so (`followups: {gate: true}`), the open follow-ups of resolved
    incidents are checklist items of every release candidate: it cannot start until each is
    done or waived. Owners are reminded when one falls due. Waiving needs the permission
    incident.followup.waive."""
    if inv.words and inv.words[0].lower() in {"done", "waive"}:
        verb = inv.words[0].lower()
        if len(inv.words) < 2:
            raise inv.usage_error(f"give the follow-up's number: /incident followup {verb} N")
        number = followups.followup_id(inv.words[1], inv.sub.usage)
        reason = " ".join(inv.words[2:]).strip() or None
        if verb == "waive" and not reason:
            raise inv.usage_error("say why the follow-up is waived")
        state = FollowUpState.done if verb == "done" else FollowUpState.waived
        closed = followups.close(inv.ctx, number, state, request=inv.request, reason=reason)
        return Reply(f"Follow-up {closed.id} is {closed.state}: {followups.line(closed)}")
    ref, rest = take_incident_ref(inv.words)
    text, owner, due = followups.parse_followup(rest, inv.sub.usage)
    incident = lifecycle.find_incident(inv.ctx, inv.request, ref, inv.sub.usage)
    require(inv.ctx.policy, "incident.followup", inv.request, subject=f"incident:{incident.id}")
    added = followups.add(inv.ctx, incident, text, owner=owner, due=due, actor=inv.actor)
    gates = inv.ctx.policy.followups.gates(incident.incident_class)
    after = " It gates the next release once the incident is resolved." if gates else ""
    return Reply(f"Follow-up {added.id} added to #{incident.id}: {followups.line(added)}.{after}")


@family.command("followups", "/incident followups")
async def list_followups(inv: Invocation) -> Reply:
    """Open follow-ups of every incident: overdue first, then by owner."""
    if inv.words:
        raise inv.usage_error("followups takes no arguments")
    found = followups.open_by_owner(inv.ctx)
    if not found:
        return Reply("No follow-up is open.")
    now = inv.ctx.now()
    lines = [f"{plural(len(found), 'open follow-up')}:"]
    for item, incident in found:
        flag = "🔴 " if followups.overdue(item, now) else ""
        lines.append(
            f"{flag}{item.id}. #{incident.id} {incident.incident_class}: "
            f"{followups.line(item, now)}"
        )
    lines.append("Close one with `/incident followup done N` or `/incident followup waive N WHY`.")
    return Reply("\n".join(lines))


@family.command("postmortem", "/incident postmortem [#ID]", answers_in_ack=False)
async def post_postmortem(inv: Invocation) -> Reply:
    """Build the postmortem draft (Markdown) and upload it to the incident's channel.

    Summary, class and severity, impact window, timeline with times, rollouts paused or rolled
    back and the metric values around the incident, the first response and its ticked steps,
    the follow-ups. Also served at GET /api/v1/incidents/ID/postmortem."""
    ref, rest = take_incident_ref(inv.words)
    if rest:
        raise inv.usage_error("postmortem takes only #ID")
    incident = lifecycle.find_incident(inv.ctx, inv.request, ref, inv.sub.usage)
    require(inv.ctx.policy, "incident.update", inv.request, subject=f"incident:{incident.id}")
    if not incident.channel:
        raise inv.usage_error(f"incident #{incident.id} has no channel to upload to")
    link = await postmortem.upload_postmortem(inv.ctx, incident, actor=inv.actor)
    where = f" ({link})" if link else ""
    return Reply(
        f"Uploaded the postmortem draft of #{incident.id} to {views.channel_link(incident)}{where}."
    )


@family.command("role", "/incident role [#ID] comms @USER", answers_in_ack=False)
async def role(inv: Invocation) -> Reply:
    """Name the communications lead (`comms`); the lead itself is `/incident lead @user`."""
    ref, rest = take_incident_ref(inv.words)
    if len(rest) != 2 or rest[0].lower() not in roles.ROLES:
        raise inv.usage_error(f"name a role ({', '.join(roles.ROLES)}) and one person, as @user")
    user = parse_mention(rest[1])
    if user is None:
        raise inv.usage_error(f"{rest[1][:40]!r} is not a Slack user: mention them as @user")
    incident = lifecycle.find_incident(inv.ctx, inv.request, ref, inv.sub.usage)
    await roles.assign_role(inv.ctx, incident, rest[0].lower(), user, request=inv.request)
    return Reply(f"{mention(user)} is the {roles.ROLES[rest[0].lower()]} of #{incident.id}.")


@family.command("stakeholders", "/incident stakeholders [#ID] TEXT")
async def stakeholders(inv: Invocation) -> Reply:
    """Post a stakeholder update to the policy's stakeholder channel, in a fixed plain format."""
    ref, rest = take_incident_ref(inv.words)
    incident = lifecycle.find_incident(inv.ctx, inv.request, ref, inv.sub.usage)
    channel = roles.post_stakeholder_update(inv.ctx, incident, " ".join(rest), request=inv.request)
    return Reply(f"Stakeholder update on #{incident.id} posted to <#{channel}>.")
