"""How rollouts look: the status message, thread events, buttons and the `/wave` replies."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from commands.access import in_role, may
from commands.analysis.judge import MetricVerdict, Verdict, WaveVerdict
from commands.analysis.measure import warnings_in
from commands.analysis.polls import cost_forecast, dry_run_line
from commands.core import Block, Request
from commands.policy import Metric, Policy, Wave
from commands.text import escape, mention, plural, span
from commands.values import format_duration
from commands.wave.latest import latest_text
from commands.wave.resend import resend_words
from storage.models import Release, Rollout, RolloutState

# Action ids of the buttons (bot/wave_actions.py listens for them).
PROMOTE = "wave.promote"
PAUSE = "wave.pause"
RESUME = "wave.resume"
ROLLBACK_REQUEST = "wave.rollback.request"
ROLLBACK_CONFIRM = "wave.rollback.confirm"
RETRY = "wave.retry"

VERDICT_ICONS = {
    Verdict.successful: "✅",
    Verdict.running: "⏳",
    Verdict.inconclusive: "❔",
    Verdict.error: "🙈",
    Verdict.failed: "❌",
}
STATE_ICONS = {
    RolloutState.starting: "⏳",
    RolloutState.running: "🌊",
    RolloutState.paused: "⏸",
    RolloutState.complete: "🏁",
    RolloutState.rolled_back: "⏪",
}
PAUSE_WORDS = {
    "failed": "a metric failed",
    "blind": "the metrics returned no data",
    "inconclusive": "metrics inconclusive: a person decides",
    "budget": "a budget drifted",
    "slo": "an SLO is burning",
    "incident": "an incident is open",
    "manual": "paused by hand",
    "actuator": "the deploy system failed",
    "misconfigured": "a query in the policy is wrong",
}
SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class RolloutView:
    """Everything the status of one rollout shows."""

    rollout: Rollout
    release: Release
    waves: Sequence[Wave]
    judgement: WaveVerdict | None
    now: datetime
    # metric id → its query in the source's UI (commands/analysis/verdicts.py query_link).
    links: Mapping[str, str] = field(default_factory=dict)
    # Something besides the verdict keeps the wave from promotion (an open sev 1-2 incident, a
    # missing proof): the status message then offers no Promote.
    blocked: bool = False

    @property
    def wave(self) -> Wave:
        return self.waves[self.rollout.wave_index]


def wave_label(waves: Sequence[Wave], index: int) -> str:
    wave = waves[index]
    return f"wave {index + 1} ({wave.name})"


def exposure(wave: Wave) -> str:
    return f"{', '.join(wave.tiers)} at {wave.percent:g}%"


def sparkline(values: Sequence[float], width: int = 12) -> str:
    """A small trend of the latest values: ▁▂▃▅▇."""
    recent = list(values)[-width:]
    if not recent:
        return ""
    low, high = min(recent), max(recent)
    if high == low:
        return SPARKS[3] * len(recent)
    scale = (len(SPARKS) - 1) / (high - low)
    return "".join(SPARKS[round((v - low) * scale)] for v in recent)


def condition_text(metric: Metric) -> str:
    parts = []
    if metric.compare is not None:
        against = "its baseline query" if metric.compare.explicit else "the last known-good release"
        parts.append(f"{metric.compare.direction} vs {against}")
    if metric.success is not None:
        parts.append(f"success {metric.success}")
    if metric.failure is not None:
        parts.append(f"failure {metric.failure}")
    if metric.budget is not None:
        parts.append(f"budget {metric.budget}")
    return ", ".join(parts)


def metric_line(mv: MetricVerdict, link: str | None = None) -> str:
    """One metric: verdict, value (with the source's warnings), condition, trend, samples, why;
    the metric's name links to its query in the source's UI where there is a `ui_url`."""
    metric = mv.metric
    trend = sparkline(mv.values)
    name = f"<{link}|{metric.id}>" if link else metric.id
    line = f"{VERDICT_ICONS[mv.verdict]} {name} {latest_text(mv)}"
    if warnings := warnings_in(mv.last_detail):
        line += f" ⚠️ {escape(warnings)}"
    line += f" ({condition_text(metric)})"
    if trend:
        line += f" {trend}"
    if metric.compare is None:
        line += f" · {plural(mv.valid, 'sample')} ({metric.min_samples} needed)"
    if mv.verdict != Verdict.successful and (mv.verdict != Verdict.running or _waiting(mv)):
        # The reason may quote a metric provider's message.
        line += f" · {escape(mv.reason)}"
    if metric.dry_run:
        line += " · dry run (shown, not counted)"
        if mv.verdict in (Verdict.failed, Verdict.error, Verdict.inconclusive):
            line += f" · {dry_run_line(mv)}"
    return line


def _waiting(mv: MetricVerdict) -> bool:
    """A running metric that waits for evidence says for how long (or what it compared)."""
    return "needs ~" in mv.reason or mv.metric.compare is not None


def headline(view: RolloutView) -> str:
    rollout, release = view.rollout, view.release
    icon = STATE_ICONS.get(RolloutState(rollout.state), "")
    total = len(view.waves)
    where = f"{wave_label(view.waves, rollout.wave_index)} of {total}: {exposure(view.wave)}"
    if rollout.state == RolloutState.complete:
        return f"{icon} *{release.version}* is complete: every wave of plan {rollout.plan} done."
    if rollout.state == RolloutState.rolled_back:
        return f"{icon} *{release.version}* was rolled back at {where}."
    text = f"{icon} *{release.version}* · {where} · {rollout.state}"
    if rollout.state == RolloutState.running:
        observed = view.now - rollout.wave_started_at
        text += f" · observed {span(observed)} of {format_duration(view.wave.observe)}"
        if view.judgement is not None:
            text += f" · verdict {view.judgement.verdict}"
    elif rollout.state == RolloutState.paused:
        why = PAUSE_WORDS.get(rollout.pause_kind or "", rollout.pause_kind or "")
        text += f" ({why}): {escape(rollout.paused_reason or '')}".rstrip(": ")
    return text


def pending_line(view: RolloutView) -> str | None:
    """`⏳ a promote to wave 2 (free-10) is in progress, started by <@U…> 4s ago` (DESIGN §10)."""
    rollout = view.rollout
    if rollout.pending_action is None:
        return None
    since = rollout.pending_since or view.now
    actor = rollout.pending_actor
    who = "wavegate" if actor in (None, "wavegate") else mention(actor)
    to = ""
    if rollout.pending_action == "promote" and rollout.pending_wave_index is not None:
        index = rollout.pending_wave_index
        to = f" to {wave_label(view.waves, index)}" if index < len(view.waves) else " to complete"
    elif rollout.pending_action == "rollback":
        to = (
            f" to {rollout.pending_target}"
            if rollout.pending_target
            else " with no last known-good release to return to"
        )
    return (
        f"⏳ a {rollout.pending_action}{to} is in progress (sent to the deploy system), started "
        f"by {who} {span(view.now - since)} ago{resend_words(rollout.pending_note) or ''}"
    )


def status_text(view: RolloutView) -> str:
    lines = [headline(view)]
    pending = pending_line(view)
    if pending:
        lines.append("    " + pending)
    lines += ["    " + line for line in metric_lines(view)]
    return "\n".join(lines)


def metric_lines(view: RolloutView) -> list[str]:
    """The status's metric lines, the canary score, and budgets' cost forecasts."""
    if view.judgement is None or view.rollout.state not in (
        RolloutState.running,
        RolloutState.paused,
    ):
        return []
    judgement = view.judgement
    lines = [metric_line(mv, view.links.get(mv.metric.id)) for mv in judgement.metrics]
    if judgement.score is not None:
        lines.append(f"{VERDICT_ICONS[judgement.score]} canary score: {judgement.score_reason}")
    for mv in judgement.metrics:
        if forecast := cost_forecast(mv, view.waves, view.rollout.wave_index):
            lines.append(f"💰 {forecast}")
    return lines


def button(
    text: str,
    action_id: str,
    value: dict[str, Any],
    *,
    style: str | None = None,
    confirm: tuple[str, str, str] | None = None,
) -> ButtonElement:
    dialog = None
    if confirm is not None:
        title, body, yes = confirm
        dialog = ConfirmObject(title=title[:100], text=body[:300], confirm=yes, deny="Cancel")
    return ButtonElement(
        text=text[:75],
        action_id=action_id,
        value=json.dumps(value, separators=(",", ":"))[:2000],
        style=style,
        confirm=dialog,
    )


def promote_button(view: RolloutView) -> ButtonElement:
    index = view.rollout.wave_index
    version = view.release.version
    last = index + 1 >= len(view.waves)
    onward = "complete the rollout" if last else f"go to {wave_label(view.waves, index + 1)}"
    return button(
        f"Promote wave {index + 1}",
        PROMOTE,
        {"release": version, "wave": index},
        style="primary",
        confirm=("Promote?", f"{version} will {onward}.", "Promote"),
    )


def rollback_button(version: str, reason: str) -> ButtonElement:
    return button(
        "Rollback",
        ROLLBACK_REQUEST,
        {"release": version, "reason": reason[:500]},
        style="danger",
        confirm=("Roll back?", f"You will be asked to confirm a rollback of {version}.", "Go on"),
    )


def resume_button(version: str, label: str = "Resume") -> ButtonElement:
    return button(
        label,
        RESUME,
        {"release": version},
        confirm=(f"{label}?", f"{version} will expand again; its wave is observed afresh.", label),
    )


def gate_holds(view: RolloutView) -> bool:
    """The wave may be promoted now, from what is stored and judged already (no new judging):
    running, nothing pending, its window passed, its verdict successful and nothing blocking."""
    rollout = view.rollout
    if rollout.state != RolloutState.running or rollout.pending_action is not None:
        return False
    if view.now < rollout.wave_started_at + view.wave.observe or view.blocked:
        return False
    verdict = view.judgement.verdict if view.judgement is not None else rollout.verdict
    return bool(verdict == Verdict.successful)


def status_buttons(view: RolloutView) -> list[ButtonElement]:
    """The buttons that tell the truth: Promote only while the gate holds, Pause while running,
    Resume only while paused, none after the end or while an action is pending (DESIGN §10)."""
    version = view.release.version
    state = view.rollout.state
    if state not in (RolloutState.running, RolloutState.paused):
        return []
    if view.rollout.pending_action is not None:
        return []
    buttons = [promote_button(view)] if gate_holds(view) else []
    if state == RolloutState.running:
        buttons.append(
            button(
                "Pause",
                PAUSE,
                {"release": version},
                confirm=("Pause?", f"Expansion of {version} stops until resumed.", "Pause"),
            )
        )
    else:
        buttons.append(resume_button(version))
    buttons.append(rollback_button(version, "rollback from the status message"))
    return buttons


# The permission each button of a rollout needs (Promote also needs the wave's approvers).
BUTTON_PERMISSIONS = {
    PROMOTE: "wave.promote",
    PAUSE: "wave.pause",
    RESUME: "wave.resume",
    ROLLBACK_REQUEST: "rollback.request",
    ROLLBACK_CONFIRM: "rollback",
}


def viewer_may(policy: Policy, request: Request, wave: Wave | None) -> Callable[[str], bool]:
    """Which buttons one viewer may press: for ephemeral replies, which show only those."""

    def allowed(action_id: str) -> bool:
        permission = BUTTON_PERMISSIONS.get(action_id)
        if permission is None:
            return True
        if action_id == ROLLBACK_REQUEST:
            return may(policy, "rollback", request) or may(policy, permission, request)
        if not may(policy, permission, request):
            return False
        if action_id == PROMOTE and wave is not None and wave.approvers:
            return any(in_role(policy, role, request) for role in wave.approvers)
        return True

    return allowed


def status_blocks(view: RolloutView, allowed: Callable[[str], bool] | None = None) -> list[Block]:
    """The status message; `allowed` keeps only the buttons one viewer may press (ephemeral)."""
    blocks: list[Any] = [
        HeaderBlock(text=f"Rollout {view.release.version}"[:150]),
        SectionBlock(text=MarkdownTextObject(text=headline(view)[:3000])),
    ]
    pending = pending_line(view)
    if pending:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=pending[:3000])]))
    lines = "\n".join(metric_lines(view))
    if lines:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=lines[:3000])))
    plan = " → ".join(
        ("*" + w.name + "*") if i == view.rollout.wave_index else w.name
        for i, w in enumerate(view.waves)
    )
    blocks.append(
        ContextBlock(elements=[MarkdownTextObject(text=f"plan {view.rollout.plan}: {plan}")])
    )
    buttons = [b for b in status_buttons(view) if allowed is None or allowed(b.action_id or "")]
    if buttons:
        blocks.append(ActionsBlock(elements=buttons))
    return [block.to_dict() for block in blocks]


def with_buttons(text: str, buttons: Sequence[ButtonElement]) -> list[Block]:
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(text=text[:3000]))]
    if buttons:
        blocks.append(ActionsBlock(elements=list(buttons)))
    return [block.to_dict() for block in blocks]


def retry_button(payload: dict[str, Any]) -> ButtonElement:
    return button("Retry", RETRY, payload, style="primary")


def confirm_rollback_blocks(text: str, version: str, reason: str) -> list[Block]:
    confirm = button(
        "Confirm rollback",
        ROLLBACK_CONFIRM,
        {"release": version, "reason": reason[:500]},
        style="danger",
        confirm=(
            "Roll back now?",
            f"{version} will be rolled back: {escape(reason)}"[:300],
            "Roll back",
        ),
    )
    return with_buttons(text, [confirm])
