"""The review that says what to change: figures against last month, the policy changes to make,
follow-up completion, pauses by cause, release quality and cost, and what to retire."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from commands.core import Context
from commands.incident.parse import month_bounds
from commands.incident.review import ClassFigures, build_review, time_to_mitigate, time_to_resolve
from commands.policy import Policy
from storage.checks import latest_results
from storage.followups import followups_of
from storage.incident_loop import FollowUpState
from storage.incidents import declared_between
from storage.models import AuditEvent, CheckStatus, Incident, Release
from storage.postmortems import (
    audit_between,
    measurements_of,
    releases_created_between,
    rollout_of_release,
)

QUALITY_AREA = "generation quality"
COST_AREA = "spend efficiency"
FIX_LOOP_ACTIONS = {"wave.pause", "wave.resume", "rollback"}
RETIRE_AFTER = timedelta(days=183)


def p90(values: list[timedelta]) -> timedelta | None:
    """Nearest rank: the smallest value with at least 90 % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]


def median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))


@dataclass(frozen=True)
class ClassTrend:
    figures: ClassFigures
    p90_to_mitigate: timedelta | None
    p90_to_resolve: timedelta | None
    previous: ClassFigures | None


@dataclass(frozen=True)
class PolicyChange:
    incident_class: str
    count: int
    by_hand: str
    automation: str

    @property
    def text(self) -> str:
        return (
            f"{self.incident_class}: {self.count} times, {self.by_hand} → add "
            f"`{self.automation}` to `incidents.{self.incident_class}.automations`"
        )


@dataclass(frozen=True)
class ReleaseFigures:
    version: str
    state: str
    completion_success: float | None
    time_to_deployable: timedelta | None
    fix_loops: int
    cost_per_generation: float | None


@dataclass
class FullReview:
    month: str
    previous_month: str
    total: int
    previous_total: int
    classes: list[ClassTrend]
    changes: list[PolicyChange]
    followups: dict[str, int]
    pauses_by_cause: dict[str, int]
    releases: list[ReleaseFigures]
    retire: dict[str, list[str]] = field(default_factory=dict)


def _durations(incidents: list[Incident]) -> tuple[list[timedelta], list[timedelta]]:
    mitigate = [d for i in incidents if (d := time_to_mitigate(i)) is not None]
    resolve = [d for i in incidents if (d := time_to_resolve(i)) is not None]
    return mitigate, resolve


def _window(incident: Incident, now: datetime) -> tuple[datetime, datetime]:
    return incident.declared_at, incident.resolved_at or now


def _by_person(event: AuditEvent) -> bool:
    return event.actor[:1] in {"U", "W"}


def policy_changes(ctx: Context, figures: list[ClassFigures]) -> list[PolicyChange]:
    """Recurring classes whose first response was done by hand: the automation that does it."""
    changes: list[PolicyChange] = []
    now = ctx.now()
    for f in figures:
        cls = ctx.policy.incidents.get(f.incident_class)
        automations = set(cls.automations) if cls else set()
        if f.count < 2:
            continue
        paused_by_hand = rolled_back_by_hand = 0
        for incident in f.incidents:
            start, end = _window(incident, now)
            events = audit_between(start, end + timedelta(seconds=1), session=ctx.session)
            paused_by_hand += any(e.action == "wave.pause" and _by_person(e) for e in events)
            rolled_back_by_hand += any(e.action == "rollback" and _by_person(e) for e in events)
        if "pause_rollouts" not in automations:
            how = (
                "rollouts were paused by hand each time"
                if paused_by_hand == f.count
                else f"rollouts were paused by hand {paused_by_hand} of {f.count} times"
            )
            changes.append(PolicyChange(f.incident_class, f.count, how, "pause_rollouts"))
        if "offer_rollback" not in automations and rolled_back_by_hand >= 2:
            how = f"a release was rolled back by hand {rolled_back_by_hand} of {f.count} times"
            changes.append(PolicyChange(f.incident_class, f.count, how, "offer_rollback"))
    return changes


def followup_completion(ctx: Context, incidents: list[Incident]) -> dict[str, int]:
    counts = {"total": 0, "done": 0, "waived": 0, "open": 0, "overdue": 0}
    today = ctx.now().date()
    for incident in incidents:
        assert incident.id is not None
        for f in followups_of(incident.id, session=ctx.session):
            counts["total"] += 1
            counts[str(f.state)] += 1
            if f.state == FollowUpState.open and f.due is not None and today > f.due.date():
                counts["overdue"] += 1
    return counts


def pauses_by_cause(ctx: Context, start: datetime, end: datetime) -> dict[str, int]:
    """`wave.pause` events by their kind (failed, incident, manual, …), and rollbacks."""
    causes: dict[str, int] = {}
    for event in audit_between(start, end, session=ctx.session, prefix=""):
        if event.action == "wave.pause":
            kind = (event.detail or "unknown").split(" ", 1)[0]
            causes[kind] = causes.get(kind, 0) + 1
        elif event.action == "rollback":
            causes["rolled back"] = causes.get("rolled back", 0) + 1
    return dict(sorted(causes.items(), key=lambda kv: (-kv[1], kv[0])))


def _area_metric(policy: Policy, area: str) -> str | None:
    return next((m.id for m in policy.metrics if m.area == area), None)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def release_figures(ctx: Context, release: Release) -> ReleaseFigures:
    """From the stored measurements and the audit trail of one release."""
    assert release.id is not None
    quality = _area_metric(ctx.policy, QUALITY_AREA)
    cost = _area_metric(ctx.policy, COST_AREA)
    rollout = rollout_of_release(release.id, session=ctx.session)
    rows = measurements_of(rollout.id, session=ctx.session) if rollout and rollout.id else []
    valid = [r for r in rows if r.value is not None and r.phase != "error"]
    until = release.completed_at or ctx.now()
    events = audit_between(
        release.created_at, until + timedelta(seconds=1), session=ctx.session, prefix=""
    )
    loops = [
        e
        for e in events
        if e.subject == f"release:{release.version}" and e.action in FIX_LOOP_ACTIONS
    ]
    return ReleaseFigures(
        version=release.version,
        state=str(release.state),
        completion_success=_mean(
            [r.value for r in valid if r.metric == quality and r.value is not None]
        ),
        time_to_deployable=(
            release.completed_at - release.created_at if release.completed_at else None
        ),
        fix_loops=len(loops),
        cost_per_generation=_mean(
            [r.value for r in valid if r.metric == cost and r.value is not None]
        ),
    )


def retire_list(ctx: Context, releases: list[Release], end: datetime) -> dict[str, list[str]]:
    policy = ctx.policy
    used: set[str] = set()
    for waves in policy.plans.values():
        for wave in waves:
            used |= {m.id for m in policy.wave_metrics(wave)}
    for item in policy.checklist:
        used |= set(item.verify.metrics)
    metrics = [m.id for m in policy.metrics if m.id not in used]
    used_sources = {m.source for m in policy.metrics if m.id in used}
    used_sources |= {s.source for s in policy.slos} | {p.source for p in policy.proofs if p.source}
    sources = [s for s in policy.sources if s not in used_sources]
    waived_always: list[str] = []
    if releases:
        latest = [latest_results(r.id or 0, session=ctx.session) for r in releases]
        for item in policy.checklist:
            if all(
                (res := found.get((item.id, ""))) is not None and res.status == CheckStatus.waived
                for found in latest
            ):
                waived_always.append(item.id)
    declared = {
        i.incident_class for i in declared_between(end - RETIRE_AFTER, end, session=ctx.session)
    }
    return {
        "metrics no plan uses": metrics,
        "sources nothing reads": sources,
        "checklist items waived for every release": waived_always,
        "roles with no members": [name for name, members in policy.roles.items() if not members],
        "classes never declared in 6 months": [c for c in policy.incidents if c not in declared],
    }


def build_full_review(ctx: Context, start: datetime) -> FullReview:
    """The month starting at `start`, against the month before."""
    _, end = month_bounds(start.year, start.month)
    before = month_bounds(start.year - (start.month == 1), (start.month - 2) % 12 + 1)
    review = build_review(ctx, start, end)
    previous = build_review(ctx, *before)
    earlier = {f.incident_class: f for f in previous.classes}
    trends = []
    for f in review.classes:
        mitigate, resolve = _durations(f.incidents)
        trends.append(ClassTrend(f, p90(mitigate), p90(resolve), earlier.get(f.incident_class)))
    incidents = [i for f in review.classes for i in f.incidents]
    releases = releases_created_between(start, end, session=ctx.session)
    return FullReview(
        month=review.month,
        previous_month=previous.month,
        total=review.total,
        previous_total=previous.total,
        classes=trends,
        changes=policy_changes(ctx, review.classes),
        followups=followup_completion(ctx, incidents),
        pauses_by_cause=pauses_by_cause(ctx, start, end),
        releases=[release_figures(ctx, r) for r in releases],
        retire=retire_list(ctx, releases, end),
    )
