"""The review as text (the command and the monthly post) and as JSON (GET /api/v1/review)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from commands.announce import announce
from commands.core import Context, Reply
from commands.incident import proofs
from commands.incident.improve import ClassTrend, FullReview, build_full_review, median
from commands.incident.improve import p90 as _p90
from commands.incident.parse import previous_month
from commands.incident.review import time_to_mitigate, time_to_resolve
from commands.incident.views import channel_link
from commands.text import plural, said, span
from storage.audit import Outcome, event_exists, record_event

POSTED = "posted"


def _d(value: timedelta | None) -> str:
    return span(value) if value is not None else "—"


def arrow(now: timedelta | None, before: timedelta | None) -> str:
    """↑ slower than last month, ↓ faster, = the same; nothing without both."""
    if now is None or before is None:
        return ""
    return " ↑" if now > before else " ↓" if now < before else " ="


def _previous_medians(trend: ClassTrend) -> tuple[timedelta | None, timedelta | None]:
    if trend.previous is None:
        return None, None
    return trend.previous.median_to_mitigate, trend.previous.median_to_resolve


def _number(value: float | None, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if value is not None else "—"


def render_full_review(review: FullReview, ctx: Context) -> Reply:
    lines = [
        f"Incident review {review.month}: {plural(review.total, 'incident')} "
        f"({review.previous_month}: {review.previous_total})"
    ]
    if review.classes:
        lines.append(
            "class · count · time to mitigate median / p90 · time to resolve median / p90 · "
            f"arrows vs {review.previous_month} medians (↑ slower, ↓ faster) · incidents"
        )
    for rank, trend in enumerate(review.classes, start=1):
        f = trend.figures
        was_mitigate, was_resolve = _previous_medians(trend)
        links = " ".join(
            f"#{i.id} {channel_link(i)}" + ("" if i.resolved_at else " (open)")
            for i in f.incidents[:10]
        )
        before = f" (was {trend.previous.count})" if trend.previous else ""
        lines.append(
            f"{rank}. {f.incident_class} · {f.count}{before} · "
            f"{_d(f.median_to_mitigate)} / {_d(trend.p90_to_mitigate)}"
            f"{arrow(f.median_to_mitigate, was_mitigate)} · "
            f"{_d(f.median_to_resolve)} / {_d(trend.p90_to_resolve)}"
            f"{arrow(f.median_to_resolve, was_resolve)} · {links}"
        )
    if review.changes:
        lines.append("What to change in the policy:")
        lines += [f"• {change.text}" for change in review.changes]
    else:
        lines.append(
            "What to change in the policy: nothing — no recurring class lacks an automation."
        )
    fu = review.followups
    closed = fu["done"] + fu["waived"]
    lines.append(
        f"Follow-ups: {closed} of {fu['total']} closed ({fu['done']} done, {fu['waived']} waived), "
        f"{fu['open']} open, {fu['overdue']} overdue"
    )
    causes = ", ".join(f"{cause} {count}" for cause, count in review.pauses_by_cause.items())
    lines.append(f"Rollouts paused or rolled back, by cause: {causes or 'none'}")
    lines.append(
        f"Release quality and cost ({plural(len(review.releases), 'release')} registered): "
        "version · state "
        "· completion success · time to deployable · fix loops · cost per generation"
    )
    for r in review.releases:
        lines.append(
            f"• {r.version} · {said(r.state)} · {_number(r.completion_success)} · "
            f"{_d(r.time_to_deployable)} · {r.fix_loops} · {_number(r.cost_per_generation, 4)}"
        )
    now = ctx.now()
    proof_lines = [s.line(now) for s in proofs.statuses(ctx)]
    if proof_lines:
        lines.append("Proofs of the first-response paths: " + "; ".join(proof_lines))
    retire = [f"{what}: {', '.join(names)}" for what, names in review.retire.items() if names]
    lines.append("Retire? " + ("; ".join(retire) if retire else "nothing unused was found."))
    return Reply("\n".join(lines))


def _seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


def review_json(review: FullReview) -> dict[str, Any]:
    classes = []
    for trend in review.classes:
        f = trend.figures
        mitigate = [d for i in f.incidents if (d := time_to_mitigate(i)) is not None]
        resolve = [d for i in f.incidents if (d := time_to_resolve(i)) is not None]
        was_mitigate, was_resolve = _previous_medians(trend)
        classes.append(
            {
                "class": f.incident_class,
                "count": f.count,
                "previous_count": trend.previous.count if trend.previous else 0,
                "median_to_mitigate_s": _seconds(median(mitigate)),
                "p90_to_mitigate_s": _seconds(_p90(mitigate)),
                "median_to_resolve_s": _seconds(median(resolve)),
                "p90_to_resolve_s": _seconds(_p90(resolve)),
                "previous_median_to_mitigate_s": _seconds(was_mitigate),
                "previous_median_to_resolve_s": _seconds(was_resolve),
                "mitigate_trend": arrow(f.median_to_mitigate, was_mitigate).strip() or None,
                "resolve_trend": arrow(f.median_to_resolve, was_resolve).strip() or None,
                "automated": f.automated,
                "incidents": [i.id for i in f.incidents],
            }
        )
    return {
        "month": review.month,
        "previous_month": review.previous_month,
        "total": review.total,
        "previous_total": review.previous_total,
        "classes": classes,
        "policy_changes": [
            {
                "class": c.incident_class,
                "count": c.count,
                "automation": c.automation,
                "text": c.text,
            }
            for c in review.changes
        ],
        "followups": review.followups,
        "pauses_by_cause": review.pauses_by_cause,
        "releases": [
            {
                "version": r.version,
                "state": r.state,
                "completion_success": r.completion_success,
                "time_to_deployable_s": _seconds(r.time_to_deployable),
                "fix_loops": r.fix_loops,
                "cost_per_generation": r.cost_per_generation,
            }
            for r in review.releases
        ],
        "retire": review.retire,
    }


def post_monthly_review(ctx: Context) -> bool:
    """The scheduled review of last month, posted once in the incidents channel."""
    start, _ = previous_month(ctx.now())
    target = f"review:{start:%Y-%m}"
    channel = ctx.policy.channels.incidents
    if channel is None:
        return False
    if event_exists(action="incident.review", subject=target, detail=POSTED, session=ctx.session):
        return False
    reply = render_full_review(build_full_review(ctx, start), ctx)
    announce(ctx, reply.text, channel=channel)
    record_event(
        actor="wavegate",
        action="incident.review",
        subject=target,
        outcome=Outcome.ok,
        detail=POSTED,
        at=ctx.now(),
        session=ctx.session,
    )
    return True
