"""Incident replies and posts: guidance checklist, announcements, lists, summaries and the form."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from commands.core import Reply
from commands.limits import MESSAGE_TEXT, OPTIONS, fit_blocks, fit_text
from commands.policy import IncidentClass, Policy
from commands.text import escape, mention, plural, span
from commands.wave.views import rollback_button
from storage.models import Incident, IncidentStatus, Rollout, RolloutState, TimelineEntry

TICK_ACTION = "incident.step.tick"
RESUME_ACTION = "incident.rollout.resume"
RESUME_ALL = f"{RESUME_ACTION}.all"
# A resolve summary's per-rollout Resume buttons, at most; *Resume all* covers the rest.
RESUME_SHOWN = 20
DECLARE_FORM = "incident.declare"
# Open incidents `/incident list` names one by one.
LISTED = 30
ICON = {1: "🔴", 2: "🟠", 3: "🟡", 4: "🔵"}
STATUS_ICON = {
    IncidentStatus.declared: "🚨",
    IncidentStatus.mitigated: "🩹",
    IncidentStatus.resolved: "✅",
}
LIFECYCLE_HINT = (
    "`/incident status TEXT` · `/incident lead @user` · `/incident mitigated` · "
    "`/incident resolve [SUMMARY]` · pin a message (or react :pushpin:) to add it to the timeline"
)


def hhmm(at: datetime) -> str:
    return f"{at.astimezone(UTC):%H:%M} UTC"


def channel_link(incident: Incident) -> str:
    if not incident.channel:
        return "(no channel)"
    label = f"|{incident.channel_name}" if incident.channel_name else ""
    return f"<#{incident.channel}{label}>"


def name(incident: Incident) -> str:
    return f"#{incident.id} sev{incident.severity} {incident.incident_class}"


def one_line(incident: Incident) -> str:
    summary = escape(incident.summary)
    return f"{name(incident)} ({incident.status}) — {summary} {channel_link(incident)}"


def _blocks(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]


def topic(incident: Incident, cls: IncidentClass) -> str:
    """The channel topic: severity, class, status, lead and summary within Slack's 250."""
    text = (
        f"Sev{incident.severity} {cls.title} · {incident.status} · lead "
        f"{mention(incident.commander)} · {escape(incident.summary)}"
    )
    return text if len(text) <= 250 else text[:249] + "…"


# ---------------------------------------------------------------- the guidance checklist


def guidance(
    incident: Incident, cls: IncidentClass, ticks: dict[int, TimelineEntry]
) -> tuple[str, list[dict[str, Any]]]:
    """The first action and the class's steps; each untick step has a Done button."""
    headline = f"{STATUS_ICON[IncidentStatus(incident.status)]} {name(incident)}: {cls.title}"
    facts = (
        f"*{escape(incident.summary)}*\nDeclared by {mention(incident.declared_by)} at "
        f"{hhmm(incident.declared_at)} · lead {mention(incident.commander)}"
    )
    if incident.release:
        facts += f" · release {escape(incident.release)}"
    lines = [headline, facts, f"*First action:* {cls.first_action}"]
    blocks: list[Block] = [
        HeaderBlock(text=headline[:150]),
        SectionBlock(text=MarkdownTextObject(text=facts[:3000])),
        SectionBlock(text=MarkdownTextObject(text=f"*First action:* {cls.first_action}"[:3000])),
    ]
    for index, step in enumerate(cls.steps, start=1):
        tick = ticks.get(index)
        if tick is None:
            line = f"⬜ {index}. {step}"
            button = ButtonElement(
                text="Done",
                action_id=f"{TICK_ACTION}.{index}",
                value=json.dumps({"incident": incident.id, "step": index}),
            )
            blocks.append(SectionBlock(text=MarkdownTextObject(text=line[:3000]), accessory=button))
        else:
            line = f"✅ {index}. {step} — {mention(tick.actor)} at {hhmm(tick.at)}"
            blocks.append(SectionBlock(text=MarkdownTextObject(text=line[:3000])))
        lines.append(line)
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=LIFECYCLE_HINT)]))
    return "\n".join(lines), _blocks(blocks)


def announcement(incident: Incident, cls: IncidentClass) -> str:
    """The incidents channel's post; updated in place as the incident moves on."""
    text = (
        f"{ICON.get(incident.severity, '')} *Sev{incident.severity} {cls.title}* declared by "
        f"{mention(incident.declared_by)}: {escape(incident.summary)} — join "
        f"{channel_link(incident)} "
        f"(incident #{incident.id}, lead {mention(incident.commander)})"
    )
    # The outcome leads the line, so the channel reads at a glance which incidents are over.
    if incident.resolved_at is not None:
        return f"✅ *Resolved* after {span(incident.resolved_at - incident.declared_at)} · {text}"
    if incident.mitigated_at is not None:
        return f"🩹 *Mitigated* after {span(incident.mitigated_at - incident.declared_at)} · {text}"
    return text


def rollback_offer(incident: Incident, release: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The waves family's Rollback button, which asks for confirmation before anything."""
    if release is None:
        text = "No rollout is active, so there is no release to roll back."
        return text, _blocks([SectionBlock(text=MarkdownTextObject(text=text))])
    text = (
        f"Roll back {release}? The rollback asks for confirmation before anything changes "
        f"(or `/rollback {release} REASON`)."
    )
    button = rollback_button(release, f"incident #{incident.id}: {incident.summary}")
    return text, _blocks(
        [SectionBlock(text=MarkdownTextObject(text=text)), ActionsBlock(elements=[button])]
    )


def paused_text(rollouts: Sequence[tuple[Rollout, str]]) -> str:
    if not rollouts:
        return "No rollout was running; nothing was paused."
    names = ", ".join(version for _, version in rollouts[:20])
    if len(rollouts) > 20:
        names += f" and {len(rollouts) - 20} more"
    return (
        f"Paused {plural(len(rollouts), 'running rollout')}: {names}. They stay paused until "
        "resumed."
    )


# ---------------------------------------------------------------- lists and summaries


def open_list(incidents: Sequence[Incident], now: datetime) -> Reply:
    if not incidents:
        return Reply(
            "No incident is open. Declare one with `/incident declare CLASS [SEV] SUMMARY`."
        )
    lines = [f"{plural(len(incidents), 'open incident')}:"]
    for incident in incidents[:LISTED]:
        lines.append(
            f"{STATUS_ICON[IncidentStatus(incident.status)]} {one_line(incident)} · lead "
            f"{mention(incident.commander)} · declared {span(now - incident.declared_at)} ago"
        )
    if len(incidents) > LISTED:
        lines.append(
            f"… and {len(incidents) - LISTED} more: see the App Home or GET /api/v1/incidents."
        )
    text = "\n".join(lines)
    chunks: list[Block] = []
    chunk: list[str] = []
    for line in lines:
        line = fit_text(line, 2900)
        if sum(len(c) + 1 for c in chunk) + len(line) > 2900:
            chunks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
            chunk = []
        chunk.append(line)
    chunks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
    return Reply(
        fit_text(text, MESSAGE_TEXT, more="… see the App Home."),
        blocks=fit_blocks(_blocks(chunks), where="see the App Home"),
    )


def which_incident(incidents: Sequence[Incident]) -> str:
    listed = "; ".join(one_line(i) for i in incidents[:20])
    return (
        f"{len(incidents)} incidents are open; name one with #ID or run the command in its "
        f"channel: {listed}"
    )


def durations(incident: Incident) -> str:
    """`declared 10:00 → … → resolved 14:30`, with dates when the span crosses a day."""
    end = incident.resolved_at or incident.mitigated_at or incident.declared_at
    show = hhmm if end.date() == incident.declared_at.date() else dated
    parts = [f"declared {show(incident.declared_at)}"]
    if incident.mitigated_at is not None:
        parts.append(
            f"mitigated {show(incident.mitigated_at)} "
            f"(+{span(incident.mitigated_at - incident.declared_at)})"
        )
    else:
        parts.append("mitigated: not separately")
    if incident.resolved_at is not None:
        parts.append(
            f"resolved {show(incident.resolved_at)} "
            f"(+{span(incident.resolved_at - incident.declared_at)} in all)"
        )
    return " → ".join(parts)


def dated(at: datetime) -> str:
    at = at.astimezone(UTC)
    return f"{at:%b} {at.day} {at:%H:%M} UTC"


def resolve_summary(
    incident: Incident, summary: str | None, paused: Sequence[tuple[Rollout, str]]
) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        f"✅ Incident {name(incident)} resolved: {escape(incident.summary)}",
        durations(incident),
    ]
    if summary:
        lines.append(f"Resolution: {escape(summary)}")
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text="\n".join(lines)[:3000]))]
    still_paused = [(r, v) for r, v in paused if r.state == RolloutState.paused]
    if paused:
        lines.append(
            f"This incident paused {plural(len(paused), 'rollout')}; nothing resumes by itself. "
            + ("Resume them when it is safe:" if still_paused else "None of them is still paused.")
        )
        blocks.append(SectionBlock(text=MarkdownTextObject(text=lines[-1])))
    if len(still_paused) > 1:
        every = ButtonElement(
            text=f"Resume all {len(still_paused)}"[:75],
            action_id=RESUME_ALL,
            value=json.dumps({"incident": incident.id}),
            style="primary",
            confirm=ConfirmObject(
                title="Resume them all?",
                text=f"Resume the {len(still_paused)} rollouts this incident paused, each "
                "where it was paused (each checked as a single Resume is).",
                confirm="Resume all",
                deny="Cancel",
            ),
        )
        blocks.append(ActionsBlock(elements=[every]))
    hidden = len(still_paused) - RESUME_SHOWN
    for rollout, version in still_paused[:RESUME_SHOWN]:
        button = ButtonElement(
            text=f"Resume {version}"[:75],
            action_id=f"{RESUME_ACTION}.{rollout.id}",
            value=json.dumps({"incident": incident.id, "rollout": rollout.id}),
            confirm=ConfirmObject(
                title="Resume the rollout?",
                text=f"Resume {version} where it was paused.",
                confirm="Resume",
                deny="Cancel",
            ),
        )
        paused_at = hhmm(rollout.paused_at) if rollout.paused_at else "?"
        line = f"⏸ {version} — paused at {paused_at} (or `/wave resume {version}`)"
        lines.append(line)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line), accessory=button))
    if hidden > 0:
        more = (
            f"… and {hidden} more paused: *Resume all* resumes them too; `/wave status` or the "
            "App Home lists them."
        )
        lines.append(more)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=more)))
    text = fit_text("\n".join(lines), MESSAGE_TEXT, more="… see the App Home.")
    return text, fit_blocks(_blocks(blocks))


# ---------------------------------------------------------------- the declare form


def declare_form(
    policy: Policy, *, summary: str = "", releases: Sequence[str] = ()
) -> dict[str, Any]:
    """The modal `/incident declare` opens with no arguments (or an unknown class)."""
    class_options = [
        Option(value=ident, label=f"{cls.title} (sev{cls.severity})"[:75])
        for ident, cls in list(policy.incidents.items())[:100]
    ]
    severity_options = [Option(value=str(s), label=f"sev{s}") for s in (1, 2, 3, 4)]
    blocks: list[Block] = [
        InputBlock(
            block_id="class",
            label="Class",
            element=StaticSelectElement(action_id="value", options=class_options),
        ),
        InputBlock(
            block_id="severity",
            label="Severity (default: the class's)",
            optional=True,
            element=StaticSelectElement(action_id="value", options=severity_options),
        ),
        InputBlock(
            block_id="summary",
            label="Summary",
            element=PlainTextInputElement(
                action_id="value", initial_value=summary[:2000] or None, max_length=2000
            ),
        ),
    ]
    if releases:
        # A select of the active rollouts (Slack allows 100 options of 75 characters).
        release_options = [
            Option(value=version[:150], label=version[:75]) for version in releases[:OPTIONS]
        ]
        blocks.append(
            InputBlock(
                block_id="release",
                label="Affected release",
                optional=True,
                hint=PlainTextObject(text="The active rollout to offer a rollback of"),
                element=StaticSelectElement(action_id="value", options=release_options),
            )
        )
    return {
        "type": "modal",
        "callback_id": DECLARE_FORM,
        "title": {"type": "plain_text", "text": "Declare an incident"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": _blocks(blocks),
    }


def form_as_text(view: dict[str, Any]) -> str:
    """What the console shows instead of a modal."""
    fields = [str(block.get("label", {}).get("text", "")) for block in view.get("blocks", [])]
    return f"{view['title']['text']}: " + ", ".join(fields)
