"""Alertmanager notifications: an alert group naming an incident class declares that incident
once (deduplicated by the group key) and adds later notifications to its timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from commands.core import Context, UsageError
from commands.incident import rules
from commands.incident.declare import declare_incident
from commands.incident.parse import DeclareArgs, classes_line, parse_severity
from commands.text import escape
from storage.incidents import incident_for_alert_group
from storage.models import Incident, IncidentStatus

ALERT_ACTOR = "alertmanager"
# The label that names the incident class; `wavegate_incident` is accepted as well.
CLASS_LABELS = ("incident_class", "wavegate_incident")


class AlertOutcome(StrEnum):
    declared = "declared"
    updated = "updated"
    ignored = "ignored"


@dataclass(frozen=True)
class FiringAlert:
    name: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    summary: str | None = None


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


def _label(group: AlertGroup, names: tuple[str, ...]) -> str | None:
    """The first value of these labels: on a firing alert, then on any alert, then common."""
    for alert in [*group.firing, *group.alerts]:
        for name in names:
            if alert.labels.get(name):
                return alert.labels[name]
    return next((group.common_labels[n] for n in names if group.common_labels.get(n)), None)


def incident_class_of(group: AlertGroup, ctx: Context) -> str | None:
    """The class the alerts name; None when they name none. An unknown class is an error."""
    named = _label(group, CLASS_LABELS)
    if named is None:
        return None
    if named.lower() not in ctx.policy.incidents:
        raise UsageError(
            f"unknown incident class {named[:64]!r} in the alert's labels; "
            + classes_line(ctx.policy)
        )
    return named.lower()


def _names(alerts: list[FiringAlert]) -> str:
    return ", ".join(dict.fromkeys(alert.name for alert in alerts)) or "(unnamed)"


async def receive_alerts(ctx: Context, group: AlertGroup) -> tuple[AlertOutcome, Incident | None]:
    """Declare the group's incident, or add this notification to its timeline."""
    incident_class = incident_class_of(group, ctx)
    if incident_class is None:
        return AlertOutcome.ignored, None
    incident = incident_for_alert_group(group.group_key, session=ctx.session)
    if incident is not None and incident.status == IncidentStatus.resolved and group.firing:
        # The same alerts firing after the incident was resolved are a new incident; the old
        # one keeps its history and lets go of the key.
        incident.alert_group_key = None
        ctx.session.add(incident)
        ctx.session.flush()
        incident = None
    if incident is None:
        if not group.firing:
            return AlertOutcome.ignored, None
        cls = ctx.policy.incidents[incident_class]
        severity = parse_severity(_label(group, ("severity",)) or "") or cls.severity
        first = group.firing[0]
        summary = (group.summary or first.summary or f"{first.name} firing").strip()
        args = DeclareArgs(incident_class, severity, " ".join(summary.split())[:2000])
        declared = await declare_incident(
            ctx, args, actor=ALERT_ACTOR, alert_group_key=group.group_key
        )
        return AlertOutcome.declared, declared
    if group.firing:
        text = f"Alertmanager: {len(group.firing)} alert(s) firing: {_names(group.firing)}"
    else:
        text = f"Alertmanager: the alerts resolved: {_names(group.alerts)}"
    rules.record(
        ctx,
        incident,
        actor=ALERT_ACTOR,
        action="incident.alert",
        kind="alert",
        text=text,
        update=False,
    )
    # Alert names are Alertmanager's labels.
    rules.tell(ctx, incident, f"🔔 #{incident.id} {escape(text)}")
    return AlertOutcome.updated, incident
