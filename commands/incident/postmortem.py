"""The postmortem draft: a Markdown document built from the incident's own records, uploaded to
its channel and served by the API; and the channel archived after resolve."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from commands.announce import announce
from commands.core import Context
from commands.incident.chat import chat_of
from commands.incident.rules import class_of, version_of
from commands.text import said, span
from storage.audit import Outcome, event_exists, record_event
from storage.followups import followups_of
from storage.incident_loop import FollowUp, FollowUpState, IncidentClosure
from storage.incident_reach import roles_of, schedule_closure
from storage.incidents import paused_rollouts
from storage.models import Incident, Measurement
from storage.outbox import get_message
from storage.postmortems import measurements_between, rolled_back_between, timeline_of

# Metric values are shown from this long before the incident was declared.
LOOKBACK = timedelta(hours=1)
TIMELINE_KINDS = {"declared", "status", "pin", "step", "mitigated", "resolved", "lead", "role"}


def when(at: datetime | None) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if at is not None else "—"


_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def _plain(text: str) -> str:
    """Markdown table cells and list items stay on one line; Slack mentions read `@U…`."""
    return _MENTION.sub(r"@\1", " ".join(text.split())).replace("|", "\\|")


def _followup(f: FollowUp) -> str:
    parts = [f.text, f"owner @{f.owner}" if f.owner else "no owner"]
    if f.due is not None:
        parts.append(f"due {f.due:%Y-%m-%d}")
    if f.state != FollowUpState.open:
        parts.append(f"{f.state} {when(f.closed_at)}" + (f": {f.reason}" if f.reason else ""))
    return " · ".join(parts)


def _metric_lines(rows: Iterable[Measurement], versions: dict[int, str]) -> list[str]:
    by_metric: dict[tuple[int, str], list[Measurement]] = {}
    for row in rows:
        by_metric.setdefault((row.rollout_id, row.metric), []).append(row)
    lines = []
    for (rollout_id, metric), found in sorted(by_metric.items()):
        values = [r.value for r in found if r.value is not None]
        if not values:
            lines.append(f"- {versions.get(rollout_id, rollout_id)} · `{metric}`: no values")
            continue
        lines.append(
            f"- {versions.get(rollout_id, rollout_id)} · `{metric}`: first {values[0]:g} at "
            f"{when(found[0].taken_at)}, min {min(values):g}, max {max(values):g}, last "
            f"{values[-1]:g} at {when(found[-1].taken_at)} ({len(found)} polls)"
        )
    return lines


def build_postmortem(ctx: Context, incident: Incident) -> str:
    """Summary, class and severity, impact window, timeline, rollouts and metrics, first
    response, follow-ups: each from what was recorded, with dates and times."""
    assert incident.id is not None
    cls = class_of(ctx, incident)
    entries = timeline_of(incident.id, session=ctx.session)
    resolution = next((e.text for e in entries if e.kind == "resolved"), None)
    end = incident.resolved_at or ctx.now()
    out = [f"# Postmortem draft: incident #{incident.id} — {_plain(incident.summary)}", ""]
    out += ["## Summary", "", _plain(incident.summary)]
    if resolution:
        out += ["", _plain(resolution)]
    roles = roles_of(incident.id, session=ctx.session)
    out += ["", f"Commander: {incident.commander or 'nobody'}"]
    out += [f"Communications lead: {roles['comms']}"] if "comms" in roles else []
    out += [
        "",
        "## Class and severity",
        "",
        f"{cls.title} (`{incident.incident_class}`), sev{incident.severity}",
    ]
    if incident.release:
        out.append(f"Release: {incident.release}")
    out += ["", "## Impact window", ""]
    out.append(f"- Declared: {when(incident.declared_at)}")
    mitigated = incident.mitigated_at
    out.append(
        f"- Mitigated: {when(mitigated)}"
        + (f" (+{span(mitigated - incident.declared_at)})" if mitigated else "")
    )
    resolved = incident.resolved_at
    out.append(
        f"- Resolved: {when(resolved)}"
        + (f" (+{span(resolved - incident.declared_at)})" if resolved else " (still open)")
    )
    out += ["", "## Timeline", "", "| time | what | who | detail |", "|---|---|---|---|"]
    for entry in entries:
        out.append(f"| {when(entry.at)} | {entry.kind} | {entry.actor} | {_plain(entry.text)} |")
    paused = paused_rollouts(incident.id, session=ctx.session)
    rolled = rolled_back_between(incident.declared_at - LOOKBACK, end, session=ctx.session)
    versions = {r.id: version_of(ctx, r) for r in paused if r.id is not None}
    versions.update({r.id: rel.version for r, rel in rolled if r.id is not None})
    out += ["", "## Rollouts paused or rolled back", ""]
    out += [f"- Paused: {versions[r.id]} (now {said(r.state)})" for r in paused if r.id is not None]
    out += [f"- Rolled back: {rel.version} at {when(r.finished_at)}" for r, rel in rolled]
    if not versions:
        out.append("- None.")
    rows = measurements_between(
        list(versions), incident.declared_at - LOOKBACK, end, session=ctx.session
    )
    out += [
        "",
        f"### Metric values from {when(incident.declared_at - LOOKBACK)} to {when(end)}",
        "",
    ]
    out += _metric_lines(rows, versions) or ["- No measurements in that window."]
    out += ["", "## First response", "", f"First action: {_plain(cls.first_action)}", ""]
    ticks = {e.ref: e for e in entries if e.ref and e.ref.startswith("step:")}
    for index, step in enumerate(cls.steps, start=1):
        tick = ticks.get(f"step:{index}")
        done = f"done by {tick.actor} at {when(tick.at)}" if tick else "not ticked"
        out.append(f"- [{'x' if tick else ' '}] {index}. {_plain(step)} — {done}")
    automations = [e for e in entries if e.kind == "automation"]
    out += [f"- Automation at {when(e.at)}: {_plain(e.text)}" for e in automations]
    out += ["", "## Follow-ups", ""]
    followups = followups_of(incident.id, session=ctx.session)
    out += [
        f"- [{'x' if f.state != FollowUpState.open else ' '}] {f.id}. {_plain(_followup(f))}"
        for f in followups
    ] or ["- None yet: add them with `/incident followup TEXT @owner due YYYY-MM-DD`."]
    return "\n".join(out) + "\n"


def filename(incident: Incident) -> str:
    return f"postmortem-incident-{incident.id}.md"


async def upload_postmortem(ctx: Context, incident: Incident, *, actor: str) -> str | None:
    """Build the draft, end the transaction, upload it to the incident's channel (no database
    transaction is open while Slack answers), then record it; the file's permalink."""
    assert incident.id is not None
    assert incident.channel is not None
    document = build_postmortem(ctx, incident)
    chat = chat_of(ctx)
    ctx.session.commit()
    link = await chat.upload_file(
        incident.channel,
        filename=filename(incident),
        title=f"Postmortem draft: incident #{incident.id}",
        content=document,
        comment=f"📄 Postmortem draft of incident #{incident.id}: edit it, then share it.",
    )
    closure = ctx.session.get(IncidentClosure, incident.id)
    if closure is not None and link:
        closure.postmortem_link = link
        ctx.session.add(closure)
    record_event(
        actor=actor,
        action="incident.postmortem",
        subject=f"incident:{incident.id}",
        outcome=Outcome.ok,
        detail=link,
        at=ctx.now(),
        session=ctx.session,
    )
    return link


def closing_key(incident_id: int) -> str:
    return f"incident:{incident_id}:closing"


def schedule_archive(ctx: Context, incident: Incident) -> None:
    """On resolve: the channel is archived after the policy's delay (`archive.after`)."""
    if ctx.policy.archive is not None and incident.channel and incident.id is not None:
        schedule_closure(
            incident.id, archive_at=ctx.now() + ctx.policy.archive.after, session=ctx.session
        )


def say_closing(ctx: Context, closure: IncidentClosure, incident: Incident) -> bool:
    """The channel's last message, linking the postmortem, queued once before the archive."""
    assert incident.channel is not None
    target = f"incident:{incident.id}"
    if event_exists(
        action="incident.closing", subject=target, detail="queued", session=ctx.session
    ):
        return False
    api = f"`GET /api/v1/incidents/{incident.id}/postmortem`"
    link = f"<{closure.postmortem_link}|postmortem draft>" if closure.postmortem_link else api
    announce(
        ctx,
        f"🗄️ Incident #{incident.id} is resolved; this channel is being archived. The "
        f"postmortem: {link} (also {api}). Open follow-ups: `/incident followups`.",
        channel=incident.channel,
        message_key=closing_key(incident.id or 0),
    )
    record_event(
        actor="wavegate",
        action="incident.closing",
        subject=target,
        outcome=Outcome.ok,
        detail="queued",
        at=ctx.now(),
        session=ctx.session,
    )
    return True


def closing_said(ctx: Context, incident_id: int) -> bool:
    """The last message was delivered, so archiving cannot swallow it."""
    return get_message(closing_key(incident_id), session=ctx.session) is not None
