"""What a viewer's App Home shows, read from storage: what waits on them, rollouts, incidents and
the newest release's checklist, with what the viewer may do to each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from commands.access import in_role, may
from commands.core import Context, Request
from commands.incident.rules import USER_ID
from commands.ready.checklist import Checklist, ItemStatus, evaluate
from commands.wave import views
from commands.wave.rules.base import plan_of, subject_of, window_passed
from storage.audit import events_for
from storage.incidents import open_incidents
from storage.models import AuditEvent, Incident, Rollout, RolloutState
from storage.releases import newest_unfinished_release
from storage.rollouts import active_rollouts, count_active_rollouts

# The most rollouts and incidents one Home lists; the rest are counted ("and N more").
ROLLOUTS_SHOWN = 15
INCIDENTS_SHOWN = 10
# A rollback asked for longer ago than this no longer waits for a confirmation on the Home.
ROLLBACK_REQUEST_FRESH = timedelta(hours=1)


@dataclass(frozen=True)
class RolloutEntry:
    """One active rollout and what the viewer may press on it."""

    view: views.RolloutView
    may_promote: bool
    may_pause: bool
    may_resume: bool
    may_rollback: bool
    # The gate holds (window passed, verdict successful, no blocking incident) and the wave is
    # promoted by people: it waits on whoever may promote it.
    promotable: bool


@dataclass(frozen=True)
class RollbackAsk:
    version: str
    asked: AuditEvent


@dataclass
class HomeContent:
    viewer: str
    now: datetime
    rollouts: list[RolloutEntry] = field(default_factory=list)
    rollouts_total: int = 0
    incidents: list[Incident] = field(default_factory=list)
    incidents_total: int = 0
    led: list[Incident] = field(default_factory=list)
    rollbacks: list[RollbackAsk] = field(default_factory=list)
    checklist: Checklist | None = None
    owned: list[ItemStatus] = field(default_factory=list)

    @property
    def promotable(self) -> list[RolloutEntry]:
        return [entry for entry in self.rollouts if entry.promotable and entry.may_promote]


def may_promote(ctx: Context, request: Request, rollout: Rollout) -> bool:
    """The permission and, where the wave names approvers, membership of one (as the gate)."""
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    if not may(ctx.policy, "wave.promote", request):
        return False
    return not wave.approvers or any(in_role(ctx.policy, r, request) for r in wave.approvers)


def _gate_holds(ctx: Context, rollout: Rollout, blocked: bool) -> bool:
    """From the stored verdict, so the Home stays quick with many rollouts: the poller keeps it."""
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    return (
        rollout.state == RolloutState.running
        and not wave.auto_promote
        and not blocked
        and rollout.verdict == "successful"
        and window_passed(ctx, rollout, wave)
    )


def _rollback_asked(ctx: Context, rollout: Rollout, subject: str) -> AuditEvent | None:
    """The newest rollback event of the release, when it is a request nobody confirmed yet."""
    for event in events_for(subject, session=ctx.session, limit=20):
        if not event.action.startswith("rollback"):
            continue
        fresh = ctx.now() - event.at <= ROLLBACK_REQUEST_FRESH
        if event.action == "rollback.requested" and event.outcome == "ok" and fresh:
            return event if event.at >= rollout.started_at else None
        return None
    return None


def home_content(ctx: Context, request: Request) -> HomeContent:
    """Everything one viewer's Home shows; read-only."""
    policy = ctx.policy
    content = HomeContent(viewer=request.user_id, now=ctx.now())
    blocking = open_incidents(session=ctx.session, max_severity=2)
    content.rollouts_total = count_active_rollouts(session=ctx.session)
    rollback_ok = may(policy, "rollback", request)
    for rollout, release in active_rollouts(session=ctx.session, limit=ROLLOUTS_SHOWN):
        view = views.RolloutView(rollout, release, plan_of(ctx, rollout), None, ctx.now())
        entry = RolloutEntry(
            view,
            may_promote=may_promote(ctx, request, rollout),
            may_pause=may(policy, "wave.pause", request),
            may_resume=may(policy, "wave.resume", request),
            may_rollback=rollback_ok,
            promotable=_gate_holds(ctx, rollout, bool(blocking)),
        )
        content.rollouts.append(entry)
        if rollback_ok:
            asked = _rollback_asked(ctx, rollout, subject_of(release))
            # One's own request waits on someone else.
            if asked is not None and asked.actor != request.user_id:
                content.rollbacks.append(RollbackAsk(release.version, asked))
    incidents = open_incidents(session=ctx.session)
    content.incidents_total = len(incidents)
    content.incidents = incidents[:INCIDENTS_SHOWN]
    content.led = [i for i in incidents if i.commander == request.user_id][:INCIDENTS_SHOWN]
    newest = newest_unfinished_release(session=ctx.session)
    if newest is not None:
        content.checklist = evaluate(newest, ctx)
        content.owned = [
            status
            for status in content.checklist.missing
            if status.item.owner
            and (
                status.item.owner == request.user_id
                or (
                    not USER_ID.match(status.item.owner)
                    and status.item.owner in request.user_groups
                )
            )
        ]
    return content
