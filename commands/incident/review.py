"""The monthly incident review: classes ranked by count and time to mitigate and resolve, and
the recurring classes with no automation ("convert recurring failures into automated
mitigations")."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from commands.core import Context, Reply
from commands.incident.views import channel_link
from commands.text import plural, span
from storage.incidents import declared_between
from storage.models import Incident


@dataclass(frozen=True)
class ClassFigures:
    incident_class: str
    incidents: list[Incident]
    median_to_mitigate: timedelta | None
    median_to_resolve: timedelta | None
    automated: bool

    @property
    def count(self) -> int:
        return len(self.incidents)

    @property
    def recurring_without_automation(self) -> bool:
        return self.count >= 2 and not self.automated


@dataclass(frozen=True)
class Review:
    start: datetime
    end: datetime
    classes: list[ClassFigures]

    @property
    def month(self) -> str:
        return f"{self.start:%Y-%m}"

    @property
    def total(self) -> int:
        return sum(figures.count for figures in self.classes)


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def time_to_mitigate(incident: Incident) -> timedelta | None:
    """Until mitigation; an incident resolved without a separate mitigation was mitigated when
    it was resolved."""
    at = incident.mitigated_at or incident.resolved_at
    return at - incident.declared_at if at is not None else None


def time_to_resolve(incident: Incident) -> timedelta | None:
    return incident.resolved_at - incident.declared_at if incident.resolved_at else None


def build_review(ctx: Context, start: datetime, end: datetime) -> Review:
    """Incidents declared in [start, end), by class: most incidents first, then the slowest to
    resolve."""
    by_class: dict[str, list[Incident]] = {}
    for incident in declared_between(start, end, session=ctx.session):
        by_class.setdefault(incident.incident_class, []).append(incident)
    figures = []
    for name, incidents in by_class.items():
        cls = ctx.policy.incidents.get(name)
        figures.append(
            ClassFigures(
                incident_class=name,
                incidents=incidents,
                median_to_mitigate=_median(
                    [d for i in incidents if (d := time_to_mitigate(i)) is not None]
                ),
                median_to_resolve=_median(
                    [d for i in incidents if (d := time_to_resolve(i)) is not None]
                ),
                automated=bool(cls and cls.automations),
            )
        )
    figures.sort(key=lambda f: (-f.count, -_seconds(f.median_to_resolve), f.incident_class))
    return Review(start, end, figures)


def _seconds(value: timedelta | None) -> float:
    return value.total_seconds() if value is not None else 0.0


def _duration(value: timedelta | None) -> str:
    return span(value) if value is not None else "—"


def render_review(review: Review) -> Reply:
    if not review.classes:
        return Reply(f"Incident review {review.month}: no incidents were declared. 🎉")
    lines = [f"Incident review {review.month}: {plural(review.total, 'incident')}"]
    lines.append("class · count · median time to mitigate · median time to resolve · incidents")
    for rank, figures in enumerate(review.classes, start=1):
        links = " ".join(
            f"#{i.id} {channel_link(i)}" + ("" if i.resolved_at else " (open)")
            for i in figures.incidents[:10]
        )
        lines.append(
            f"{rank}. {figures.incident_class} · {figures.count} · "
            f"{_duration(figures.median_to_mitigate)} · {_duration(figures.median_to_resolve)}"
            f" · {links}"
        )
    recurring = [f.incident_class for f in review.classes if f.recurring_without_automation]
    if recurring:
        lines.append(
            "Recurring with no automation — convert them into automated mitigations: "
            + ", ".join(recurring)
        )
    else:
        lines.append("No recurring class lacks an automation.")
    return Reply("\n".join(lines))
