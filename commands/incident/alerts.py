"""Alertmanager notifications: an alert group naming an incident class declares that incident
once (deduplicated by the group key) and keeps one message in the incident channel up to date
with the group's later notifications; what cannot be acted on is ignored with a reason."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from commands.announce import announce
from commands.core import Context
from commands.incident import rules
from commands.incident.declare import declare_incident
from commands.incident.parse import DeclareArgs, parse_severity
from commands.text import escape, plural
from storage.incidents import incident_for_alert_group
from storage.models import Incident, IncidentStatus

ALERT_ACTOR = "alertmanager"
# The label that names the incident class; `wavegate_incident` is accepted as well.
CLASS_LABELS = ("incident_class", "wavegate_incident")
# Alertmanager's group keys grow with `group_by` (611 characters over 16 labels are real):
# longer keys are stored as their SHA-256, which fits the column and stays unique.
MAX_STORED_KEY = 200
# Alertmanager's webhook says only these; anything else (a `pending` from a proxy) is ignored.
STATUSES = ("firing", "resolved")


class AlertOutcome(StrEnum):
    declared = "declared"
    updated = "updated"
    ignored = "ignored"


class IgnoredBecause(StrEnum):
    """Why a notification was answered 2xx and nothing done (so Alertmanager stops retrying)."""

    no_class = "no_class"
    unknown_class = "unknown_class"
    status = "status"
    resolved_unknown = "resolved_unknown"


@dataclass(frozen=True)
class FiringAlert:
    name: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    summary: str | None = None
    ends_at: str | None = None
    generator_url: str | None = None


@dataclass(frozen=True)
class AlertGroup:
    """One Alertmanager webhook: the group's key and its alerts."""

    group_key: str
    alerts: list[FiringAlert]
    common_labels: dict[str, str] = field(default_factory=dict)
    summary: str | None = None

    @property
    def firing(self) -> list[FiringAlert]:
        return [alert for alert in self.alerts if alert.status == "firing"]

    @property
    def known(self) -> list[FiringAlert]:
        return [alert for alert in self.alerts if alert.status in STATUSES]

    @property
    def stored_key(self) -> str:
        return stored_group_key(self.group_key)


@dataclass(frozen=True)
class AlertResult:
    outcome: AlertOutcome
    incident: Incident | None = None
    reason: IgnoredBecause | None = None
    # In words, for the webhook's answer and the log.
    why: str = ""


def stored_group_key(group_key: str) -> str:
    """The key as stored: itself when short, else `sha256:<hex>` of it."""
    if len(group_key) <= MAX_STORED_KEY:
        return group_key
    return "sha256:" + hashlib.sha256(group_key.encode()).hexdigest()


def _label(group: AlertGroup, names: tuple[str, ...]) -> str | None:
    """The first value of these labels: on a firing alert, then on any alert, then common."""
    for alert in [*group.firing, *group.known]:
        for name in names:
            if alert.labels.get(name):
                return alert.labels[name]
    return next((group.common_labels[n] for n in names if group.common_labels.get(n)), None)


def severity_of(group: AlertGroup, ctx: Context, default: int) -> int:
    """The `severity` label through the policy's `alerts.severity_map`, numbers and sevN."""
    label = _label(group, ("severity",))
    if label is None:
        return default
    mapped = ctx.policy.alerts.severity_map.get(label.strip().lower())
    return mapped or parse_severity(label) or default


def _names(alerts: list[FiringAlert]) -> str:
    return ", ".join(dict.fromkeys(alert.name for alert in alerts)) or "(unnamed)"


def _ignored(reason: IgnoredBecause, why: str) -> AlertResult:
    return AlertResult(AlertOutcome.ignored, None, reason, why)


async def receive_alerts(ctx: Context, group: AlertGroup) -> AlertResult:
    """Declare the group's incident, or bring its alert message and timeline up to date."""
    if not group.known:
        statuses = ", ".join(sorted({a.status for a in group.alerts}))
        return _ignored(IgnoredBecause.status, f"no firing or resolved alert (status {statuses})")
    named = _label(group, CLASS_LABELS)
    if named is None:
        return _ignored(IgnoredBecause.no_class, "no incident_class label")
    incident_class = named.lower()
    if incident_class not in ctx.policy.incidents:
        known = ", ".join(sorted(ctx.policy.incidents)) or "none"
        return _ignored(
            IgnoredBecause.unknown_class,
            f"unknown incident class {named[:64]!r} (classes: {known})",
        )
    key = group.stored_key
    incident = incident_for_alert_group(key, session=ctx.session)
    if incident is not None and incident.status == IncidentStatus.resolved and group.firing:
        # The same alerts firing after the incident was resolved are a new incident; the old
        # one keeps its history and lets go of the key.
        incident.alert_group_key = None
        ctx.session.add(incident)
        ctx.session.flush()
        incident = None
    if incident is None:
        if not group.firing:
            return _ignored(IgnoredBecause.resolved_unknown, "resolved alerts of no open incident")
        cls = ctx.policy.incidents[incident_class]
        first = group.firing[0]
        summary = (group.summary or first.summary or f"{first.name} firing").strip()
        args = DeclareArgs(
            incident_class, severity_of(group, ctx, cls.severity), " ".join(summary.split())[:2000]
        )
        declared = await declare_incident(ctx, args, actor=ALERT_ACTOR, alert_group_key=key)
        _note(ctx, declared, group)
        return AlertResult(AlertOutcome.declared, declared)
    _note(ctx, incident, group)
    return AlertResult(AlertOutcome.updated, incident)


def alert_text(group: AlertGroup) -> str:
    """The group as it is now: what fires, what resolved and when, where each alert comes from."""
    lines = []
    if group.firing:
        lines.append(f"{plural(len(group.firing), 'alert')} firing: {_names(group.firing)}")
    resolved = [a for a in group.known if a.status == "resolved"]
    if resolved:
        ends = sorted({a.ends_at for a in resolved if a.ends_at})
        at = f" at {ends[-1]}" if ends else ""
        lines.append(f"resolved{at}: {_names(resolved)}")
    sources = dict.fromkeys(a.generator_url for a in group.known if a.generator_url)
    lines += [f"source: {url}" for url in list(sources)[:3]]
    return "; ".join(lines)


def _note(ctx: Context, incident: Incident, group: AlertGroup) -> None:
    """A timeline entry per notification, and ONE message in the incident channel updated in
    place (repeat notifications every group_interval would otherwise flood it)."""
    text = f"Alertmanager: {alert_text(group)}"
    rules.record(
        ctx,
        incident,
        actor=ALERT_ACTOR,
        action="incident.alert",
        kind="alert",
        text=text,
        update=False,
    )
    if incident.channel:
        announce(
            ctx,
            f"🔔 #{incident.id} {escape(text)}",
            channel=incident.channel,
            message_key=f"incident:{incident.id}:alerts",
        )
