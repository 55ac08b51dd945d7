"""Rollout rules: start, promote, pause, resume, roll back; the gate; reactions to verdicts.

Every change calls the actuator first (nothing is written if it fails), then changes the rollout
with a compare-and-set on its `version`, audits, posts the event in the rollout's thread and
updates the status message in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commands.access import in_role, require
from commands.announce import announce
from commands.checklist import require_complete
from commands.core import CommandError, Conflict, Context, Forbidden, GateClosed, Request
from commands.guardrails import error_budget_blockers
from commands.judge import Verdict, WaveVerdict, judge_metric, judge_wave
from commands.measure import Phase, Poll, Reading, classify, render_query
from commands.policy import Metric, Wave, format_duration
from commands.text import mention, span
from commands.wave import views
from commands.wave.port import Action, Actuation, ActuatorFailed, actuator_of
from storage.audit import Outcome, event_exists, record_event
from storage.incidents import add_timeline_entry, open_incidents
from storage.measurements import add_measurement, wave_measurements
from storage.models import Incident, PauseKind, Release, ReleaseState, Rollout, RolloutState
from storage.outbox import last_post_at
from storage.releases import last_known_good
from storage.rollouts import (
    ACTIVE,
    DuplicateRollout,
    active_rollouts,
    change_rollout,
    create_rollout,
    mark_ready,
    rollout_of,
    set_verdict,
)

SYSTEM = "wavegate"


class ActuatorUnavailable(CommandError):
    """The deploy system did not confirm an action; the rollout stays where it was."""

    title = "Deploy system unavailable"
    audited = True

    def __init__(self, message: str, *, action: str, subject: str, rollout_id: int | None) -> None:
        super().__init__(message, action=action, subject=subject)
        self.rollout_id = rollout_id


@dataclass(frozen=True)
class Blocker:
    """One reason the gate is closed; `--force` overrides every kind."""

    kind: str  # paused, window, metric, incident
    text: str
    incident: Incident | None = None


def subject_of(release: Release) -> str:
    return f"release:{release.version}"


# How often a status message shows fresh values when nothing else changed.
STATUS_REFRESH = timedelta(minutes=5)


def thread_key(rollout: Rollout) -> str:
    return f"rollout:{rollout.id}"


def plan_of(ctx: Context, rollout: Rollout) -> list[Wave]:
    waves = ctx.policy.plans.get(rollout.plan)
    if not waves:
        raise Conflict(
            f"plan {rollout.plan!r} of this rollout is no longer in the policy",
            action="wave",
            subject=f"rollout:{rollout.id}",
        )
    return waves


def release_of(ctx: Context, rollout: Rollout) -> Release:
    release = ctx.session.get(Release, rollout.release_id)
    assert release is not None
    return release


def window_passed(ctx: Context, rollout: Rollout, wave: Wave) -> bool:
    return ctx.now() >= rollout.wave_started_at + wave.observe


# ---------------------------------------------------------------- judging


def judge_rollout(ctx: Context, rollout: Rollout) -> WaveVerdict:
    """The current wave's verdict from the polls taken since it started (or was resumed)."""
    assert rollout.id is not None
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    passed = window_passed(ctx, rollout, wave)
    rows = wave_measurements(
        rollout.id, rollout.wave_index, since=rollout.wave_started_at, session=ctx.session
    )
    verdicts = []
    for metric in ctx.policy.wave_metrics(wave):
        polls = [Poll(Phase(r.phase), r.value, r.detail or "") for r in rows.get(metric.id, [])]
        verdicts.append(judge_metric(metric, polls, window_passed=passed))
    return judge_wave(verdicts, window_passed=passed)


def view_of(ctx: Context, rollout: Rollout, release: Release | None = None) -> views.RolloutView:
    release = release or release_of(ctx, rollout)
    judgement = judge_rollout(ctx, rollout) if rollout.state in ACTIVE else None
    return views.RolloutView(rollout, release, plan_of(ctx, rollout), judgement, ctx.now())


def incident_blockers(ctx: Context) -> list[Blocker]:
    return [
        Blocker(
            "incident",
            f"incident #{i.id} (sev{i.severity} {i.incident_class}: {i.summary}) is open",
            i,
        )
        for i in open_incidents(session=ctx.session, max_severity=2)
    ]


def promotion_blockers(ctx: Context, rollout: Rollout) -> list[Blocker]:
    """Everything that keeps the current wave from being promoted, in plain words."""
    waves = plan_of(ctx, rollout)
    wave = waves[rollout.wave_index]
    label = views.wave_label(waves, rollout.wave_index)
    blockers: list[Blocker] = []
    if rollout.state == RolloutState.paused:
        why = views.PAUSE_WORDS.get(rollout.pause_kind or "", rollout.pause_kind or "")
        blockers.append(
            Blocker("paused", f"it is paused ({why}): {rollout.paused_reason}; resume it first")
        )
    observed = ctx.now() - rollout.wave_started_at
    if observed < wave.observe:
        blockers.append(
            Blocker(
                "window",
                f"{label} has been observed {span(observed)} of "
                f"{format_duration(wave.observe)} ({span(wave.observe - observed)} to go)",
            )
        )
    judgement = judge_rollout(ctx, rollout)
    for mv in judgement.metrics:
        if not mv.counted or mv.verdict == Verdict.successful:
            continue
        if mv.verdict == Verdict.running:
            if mv.valid < mv.metric.min_samples:
                blockers.append(
                    Blocker(
                        "metric",
                        f"{mv.metric.id} has {mv.valid} of {mv.metric.min_samples} valid samples",
                    )
                )
            continue
        blockers.append(Blocker("metric", f"{mv.metric.id} is {mv.verdict}: {mv.reason}"))
    return blockers + incident_blockers(ctx)


def require_promoter(
    ctx: Context, request: Request, wave: Wave, label: str, *, subject: str, force: bool
) -> None:
    """The permission and, where the wave names approvers, membership of one: both must hold."""
    require(ctx.policy, "wave.promote", request, subject=subject)
    if wave.approvers and not any(in_role(ctx.policy, r, request) for r in wave.approvers):
        raise Forbidden(
            f"{label} is promoted only by its approvers ({', '.join(wave.approvers)})",
            action="wave.promote",
            subject=subject,
        )
    if force:
        require(ctx.policy, "wave.force", request, subject=subject)


# ---------------------------------------------------------------- the actuator


def idempotency_key(release: Release, action: str, rollout: Rollout | None) -> str:
    """Stable for one action from one state of the rollout: retries and racing presses share it."""
    version = rollout.version if rollout is not None else 0
    return f"wavegate:{release.version}:{action}:v{version}"


async def actuate(
    ctx: Context,
    action: Action,
    release: Release,
    rollout: Rollout | None,
    *,
    wave: Wave | None,
    actor: str,
    reason: str | None = None,
    target: str | None = None,
    tiers: list[str] | None = None,
    percent: float | None = None,
) -> None:
    actuation = Actuation(
        action=action,
        release=release.version,
        wave=wave.name if wave is not None else None,
        tiers=tiers if tiers is not None else (list(wave.tiers) if wave else []),
        percent=percent if percent is not None else (wave.percent if wave else None),
        target=target,
        actor=actor,
        reason=reason,
        idempotency_key=idempotency_key(release, action, rollout),
    )
    try:
        await actuator_of(ctx).send(actuation)
    except ActuatorFailed as exc:
        raise ActuatorUnavailable(
            f"the deploy system did not confirm {action} of {release.version} after "
            f"{exc.attempts} attempt{'s' if exc.attempts != 1 else ''}: {exc.message}. "
            "Nothing changed.",
            action=f"wave.{action}" if action != "rollback" else "rollback",
            subject=subject_of(release),
            rollout_id=rollout.id if rollout is not None else None,
        ) from exc


def note_actuator_failure(
    ctx: Context,
    err: ActuatorUnavailable,
    *,
    actor: str,
    retry: dict[str, Any] | None,
    detail: str | None = None,
) -> list[Any]:
    """Audit a failed actuator call, say so in the rollout's thread, and build a Retry button."""
    record_event(
        actor=actor,
        action=err.action or "wave",
        subject=err.subject or "-",
        outcome=Outcome.failed,
        reason=err.message,
        detail=detail,
        at=ctx.now(),
        session=ctx.session,
    )
    buttons = [views.retry_button(retry)] if retry is not None else []
    if err.rollout_id is not None:
        announce(
            ctx,
            f"⚠️ {err.message}",
            blocks=views.with_buttons(f"⚠️ {err.message}", buttons),
            thread_key=f"rollout:{err.rollout_id}",
        )
    return buttons


# ---------------------------------------------------------------- posts


def publish_status(ctx: Context, rollout: Rollout, release: Release | None = None) -> None:
    """The rollout's one status message, created or updated in place."""
    view = view_of(ctx, rollout, release)
    announce(
        ctx,
        views.status_text(view),
        blocks=views.status_blocks(view),
        message_key=thread_key(rollout),
    )


def refresh_status(ctx: Context, rollout: Rollout) -> bool:
    """New values with no change of state: update the status message at most every
    STATUS_REFRESH, so a poll every minute of many rollouts stays within Slack's rate limits.
    Changes of state publish at once (publish_status)."""
    last = last_post_at(thread_key(rollout), session=ctx.session)
    if last is not None and ctx.now() - last < STATUS_REFRESH:
        return False
    publish_status(ctx, rollout)
    return True


def post_event(ctx: Context, rollout: Rollout, text: str, buttons: Sequence[Any] = ()) -> None:
    blocks = views.with_buttons(text, buttons) if buttons else None
    announce(ctx, text, blocks=blocks, thread_key=thread_key(rollout))


def audit(
    ctx: Context,
    release: Release,
    action: str,
    *,
    actor: str,
    reason: str | None = None,
    detail: str | None = None,
) -> None:
    record_event(
        actor=actor,
        action=action,
        subject=subject_of(release),
        outcome=Outcome.ok,
        reason=reason,
        detail=detail,
        at=ctx.now(),
        session=ctx.session,
    )


def who(actor: str) -> str:
    return "wavegate" if actor == SYSTEM else mention(actor)


def _moved_on(ctx: Context, rollout: Rollout, release: Release) -> Conflict:
    """The refusal for a stale button or a lost race: say where the rollout is now."""
    waves = plan_of(ctx, rollout)
    where = views.wave_label(waves, rollout.wave_index)
    if rollout.state == RolloutState.complete:
        text = f"{release.version} is already complete; nothing changed"
    elif rollout.state == RolloutState.rolled_back:
        text = f"{release.version} was already rolled back; nothing changed"
    else:
        text = f"{release.version} is already at {where} ({rollout.state}); nothing changed"
    return Conflict(text, action="wave.promote", subject=subject_of(release))


def _record_overrides(
    ctx: Context, blockers: Sequence[Blocker], *, actor: str, reason: str, what: str
) -> None:
    """An override lands in each blocking incident's timeline too."""
    for blocker in blockers:
        if blocker.incident is not None and blocker.incident.id is not None:
            add_timeline_entry(
                blocker.incident.id,
                actor=actor,
                kind="override",
                text=f"{what} despite this incident, forced by {mention(actor)}: {reason}",
                at=ctx.now(),
                session=ctx.session,
            )


# ---------------------------------------------------------------- start


async def start_rollout(
    ctx: Context,
    release: Release,
    plan: str,
    *,
    actor: str,
    request: Request | None,
    force_reason: str | None = None,
) -> Rollout:
    subject = subject_of(release)
    if request is not None:
        require(ctx.policy, "wave.start", request, subject=subject)
        if force_reason is not None:
            require(ctx.policy, "wave.force", request, subject=subject)
    existing = rollout_of(release, session=ctx.session)
    if existing is not None:
        raise Conflict(
            f"{release.version} already has a rollout ({existing.state}); a release is rolled "
            "out once",
            action="wave.start",
            subject=subject,
        )
    if release.state != ReleaseState.candidate:
        raise Conflict(
            f"{release.version} is {release.state}, not a candidate",
            action="wave.start",
            subject=subject,
        )
    waves = ctx.policy.plans.get(plan)
    if not waves:
        raise GateClosed(
            f"the policy has no plan {plan!r}; plans: {', '.join(ctx.policy.plans) or 'none'}",
            action="wave.start",
            subject=subject,
        )
    require_complete(release, ctx, action="wave.start")
    blockers = incident_blockers(ctx)
    # An exhausted SLO error budget blocks a start too (commands/guardrails.py).
    blockers += [
        Blocker("slo", text) for text in await error_budget_blockers(ctx, release=release.version)
    ]
    if blockers and force_reason is None:
        raise GateClosed(
            f"cannot start {release.version}: "
            + "; ".join(b.text for b in blockers)
            + ". An approver may override with --force REASON.",
            action="wave.start",
            subject=subject,
        )
    first = waves[0]
    await actuate(ctx, "start", release, None, wave=first, actor=actor, reason=force_reason)
    now = ctx.now()
    assert release.id is not None
    try:
        rollout = create_rollout(
            Rollout(
                release_id=release.id,
                plan=plan,
                wave_started_at=now,
                started_by=actor,
                started_at=now,
            ),
            session=ctx.session,
        )
    except DuplicateRollout:
        raise Conflict(
            f"{release.version} was started by someone else just now",
            action="wave.start",
            subject=subject,
        ) from None
    release.state = ReleaseState.rolling_out
    ctx.session.add(release)
    detail = f"plan {plan}; {views.wave_label(waves, 0)}: {views.exposure(first)}"
    if blockers:
        detail += "; forced past: " + "; ".join(b.text for b in blockers)
        _record_overrides(
            ctx, blockers, actor=actor, reason=force_reason or "", what=f"{release.version} started"
        )
    audit(ctx, release, "wave.start", actor=actor, reason=force_reason, detail=detail)
    publish_status(ctx, rollout, release)
    post_event(
        ctx,
        rollout,
        f"🚀 {who(actor)} started *{release.version}* (plan {plan}): "
        f"{views.wave_label(waves, 0)} — {views.exposure(first)}, observed for "
        f"{format_duration(first.observe)}.",
    )
    return rollout


# ---------------------------------------------------------------- promote


async def promote_rollout(
    ctx: Context,
    rollout: Rollout,
    *,
    actor: str,
    request: Request | None,
    force_reason: str | None = None,
    expected_wave: int | None = None,
) -> Rollout:
    """Advance one wave (or complete the rollout past the last one).

    `request` None means wavegate itself (auto-promote): no permission check. `expected_wave` is
    the wave a button was posted for; a stale press changes nothing.
    """
    release = release_of(ctx, rollout)
    subject = subject_of(release)
    if rollout.state not in ACTIVE or (
        expected_wave is not None and rollout.wave_index != expected_wave
    ):
        raise _moved_on(ctx, rollout, release)
    waves = plan_of(ctx, rollout)
    index = rollout.wave_index
    wave = waves[index]
    label = views.wave_label(waves, index)
    if request is not None:
        require_promoter(ctx, request, wave, label, subject=subject, force=force_reason is not None)
    blockers = promotion_blockers(ctx, rollout)
    if blockers and force_reason is None:
        raise GateClosed(
            f"cannot promote {release.version} from {label}: "
            + "; ".join(b.text for b in blockers)
            + ". An approver may override with --force REASON.",
            action="wave.promote",
            subject=subject,
        )
    now = ctx.now()
    last = index + 1 >= len(waves)
    if last:
        tiers = sorted({t for w in waves for t in w.tiers}, key=ctx.policy.tiers.index)
        await actuate(
            ctx,
            "promote",
            release,
            rollout,
            wave=None,
            tiers=tiers,
            percent=100,
            actor=actor,
            reason=force_reason or "complete",
        )
        changed = change_rollout(
            rollout,
            session=ctx.session,
            state=RolloutState.complete,
            finished_at=now,
            verdict=Verdict.successful.value,
            pause_kind=None,
            paused_reason=None,
            paused_at=None,
        )
    else:
        onward = waves[index + 1]
        await actuate(
            ctx, "promote", release, rollout, wave=onward, actor=actor, reason=force_reason
        )
        changed = change_rollout(
            rollout,
            session=ctx.session,
            state=RolloutState.running,
            wave_index=index + 1,
            wave_started_at=now,
            verdict=Verdict.running.value,
            ready_at=None,
            pause_kind=None,
            paused_reason=None,
            paused_at=None,
        )
    if not changed:
        raise _moved_on(ctx, rollout, release)
    if last:
        release.state = ReleaseState.complete
        release.completed_at = now
        detail = f"completed after {label}"
        event = (
            f"🏁 {who(actor)} promoted {label}: *{release.version}* is complete and is now the "
            "last known-good release."
        )
    else:
        release.state = ReleaseState.rolling_out
        onward_label = views.wave_label(waves, index + 1)
        detail = f"{label} → {onward_label}: {views.exposure(waves[index + 1])}"
        event = (
            f"⏫ {who(actor)} promoted *{release.version}* to {onward_label} — "
            f"{views.exposure(waves[index + 1])}, observed for "
            f"{format_duration(waves[index + 1].observe)}."
        )
    ctx.session.add(release)
    if force_reason is not None and blockers:
        overridden = "; ".join(b.text for b in blockers)
        detail += f"; forced past: {overridden}"
        event += f"\nForced past: {overridden}. Reason: {force_reason}"
        _record_overrides(
            ctx,
            blockers,
            actor=actor,
            reason=force_reason,
            what=f"{release.version} promoted from {label}",
        )
    audit(ctx, release, "wave.promote", actor=actor, reason=force_reason, detail=detail)
    post_event(ctx, rollout, event)
    publish_status(ctx, rollout, release)
    return rollout


# ---------------------------------------------------------------- pause and resume


def _pause_buttons(kind: PauseKind, version: str, reason: str) -> list[Any]:
    if kind in (PauseKind.failed, PauseKind.budget, PauseKind.slo):
        return [views.rollback_button(version, reason), views.resume_button(version, "Resume")]
    if kind == PauseKind.inconclusive:
        return [
            views.resume_button(version, "Extend window"),
            views.rollback_button(version, reason),
        ]
    return [views.resume_button(version), views.rollback_button(version, reason)]


def _pause_advice(kind: PauseKind, version: str) -> str:
    if kind in (PauseKind.failed, PauseKind.budget, PauseKind.slo):
        return (
            f"Roll back, hold (do nothing), or declare an incident with `/incident declare`. "
            f"`/wave resume {version}` observes this wave afresh."
        )
    if kind == PauseKind.blind:
        return (
            "Nothing is rolled back because metrics are unavailable. Resume once the provider "
            f"is back: `/wave resume {version}`."
        )
    if kind == PauseKind.inconclusive:
        return (
            f"Extend the window (resume), promote anyway with `/wave promote {version} "
            "--force REASON`, or roll back."
        )
    return f"`/wave resume {version}` continues."


def _require_running(ctx: Context, rollout: Rollout, release: Release) -> None:
    if rollout.state != RolloutState.running:
        already = (
            f"{release.version} is already paused ({rollout.pause_kind}): {rollout.paused_reason}"
            if rollout.state == RolloutState.paused
            else f"{release.version} is {rollout.state}; there is nothing to pause"
        )
        raise Conflict(already, action="wave.pause", subject=subject_of(release))


async def pause_rollout(
    ctx: Context, rollout: Rollout, *, kind: PauseKind, reason: str, actor: str
) -> Rollout:
    release = release_of(ctx, rollout)
    _require_running(ctx, rollout, release)
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    await actuate(ctx, "pause", release, rollout, wave=wave, actor=actor, reason=reason)
    return _record_pause(ctx, rollout, release, kind=kind, reason=reason, actor=actor)


def _record_pause(
    ctx: Context, rollout: Rollout, release: Release, *, kind: PauseKind, reason: str, actor: str
) -> Rollout:
    """The deploy system paused it: write the pause, audit it, say why in the thread."""
    if not change_rollout(
        rollout,
        session=ctx.session,
        state=RolloutState.paused,
        pause_kind=kind.value,
        paused_reason=reason[:2000],
        paused_at=ctx.now(),
    ):
        raise Conflict(
            f"{release.version} changed just now ({rollout.state}); nothing changed",
            action="wave.pause",
            subject=subject_of(release),
        )
    release.state = ReleaseState.paused
    ctx.session.add(release)
    label = views.wave_label(plan_of(ctx, rollout), rollout.wave_index)
    audit(ctx, release, "wave.pause", actor=actor, reason=reason, detail=f"{kind} at {label}")
    text = (
        f"⏸ *{release.version}* paused at {label} by {who(actor)} — "
        f"{views.PAUSE_WORDS[kind]}: {reason}\n{_pause_advice(kind, release.version)}"
    )
    post_event(ctx, rollout, text, _pause_buttons(kind, release.version, reason))
    publish_status(ctx, rollout, release)
    return rollout


async def resume_rollout(ctx: Context, rollout: Rollout, *, actor: str) -> Rollout:
    """Continue a paused rollout; the current wave is observed afresh from now.

    The caller checks the permission (`wave.resume`); wavegate itself never resumes a pause.
    """
    release = release_of(ctx, rollout)
    subject = subject_of(release)
    if rollout.state != RolloutState.paused:
        raise Conflict(
            f"{release.version} is {rollout.state}, not paused; nothing to resume",
            action="wave.resume",
            subject=subject,
        )
    waves = plan_of(ctx, rollout)
    wave = waves[rollout.wave_index]
    was = rollout.pause_kind
    await actuate(ctx, "resume", release, rollout, wave=wave, actor=actor)
    now = ctx.now()
    if not change_rollout(
        rollout,
        session=ctx.session,
        state=RolloutState.running,
        pause_kind=None,
        paused_reason=None,
        paused_at=None,
        wave_started_at=now,
        verdict=Verdict.running.value,
        ready_at=None,
    ):
        raise Conflict(
            f"{release.version} changed just now ({rollout.state}); nothing changed",
            action="wave.resume",
            subject=subject,
        )
    release.state = ReleaseState.rolling_out
    ctx.session.add(release)
    label = views.wave_label(waves, rollout.wave_index)
    audit(ctx, release, "wave.resume", actor=actor, detail=f"{label}; was paused ({was})")
    post_event(
        ctx,
        rollout,
        f"▶️ {who(actor)} resumed *{release.version}*: {label} is observed afresh for "
        f"{format_duration(wave.observe)}.",
    )
    publish_status(ctx, rollout, release)
    return rollout


async def pause_running_rollouts(
    ctx: Context, *, kind: PauseKind, reason: str, actor: str
) -> list[Rollout]:
    """Pause every running rollout (an incident's `pause_rollouts`); returns the ones paused.

    The deploy system is told about every one first, then the pauses are written, so no call
    is awaited inside this function's writes. A rollout the deploy system would not pause stays
    running; its thread says so.
    """
    confirmed: list[tuple[Rollout, Release]] = []
    failures: list[ActuatorUnavailable] = []
    for rollout, release in active_rollouts(session=ctx.session):
        if rollout.state != RolloutState.running:
            continue
        wave = plan_of(ctx, rollout)[rollout.wave_index]
        try:
            await actuate(ctx, "pause", release, rollout, wave=wave, actor=actor, reason=reason)
        except ActuatorUnavailable as err:
            failures.append(err)
            continue
        confirmed.append((rollout, release))
    paused: list[Rollout] = []
    for rollout, release in confirmed:
        try:
            paused.append(
                _record_pause(ctx, rollout, release, kind=kind, reason=reason, actor=actor)
            )
        except Conflict:
            continue  # changed under us (promoted, paused): nothing to do
    for failure in failures:
        note_actuator_failure(ctx, failure, actor=actor, retry=None)
    return paused


# ---------------------------------------------------------------- rollback


def rollout_to_roll_back(ctx: Context, release: Release) -> Rollout:
    """The release's rollout, unless there is none or it was rolled back already (Conflict)."""
    subject = subject_of(release)
    rollout = rollout_of(release, session=ctx.session)
    if rollout is None:
        raise Conflict(
            f"{release.version} was never rolled out; nothing to roll back",
            action="rollback",
            subject=subject,
        )
    if rollout.state == RolloutState.rolled_back:
        raise Conflict(
            f"{release.version} was already rolled back", action="rollback", subject=subject
        )
    return rollout


async def rollback_release(ctx: Context, release: Release, *, reason: str, actor: str) -> Rollout:
    """Roll back to the last known-good release. The caller checks the `rollback` permission."""
    subject = subject_of(release)
    rollout = rollout_to_roll_back(ctx, release)
    target = last_known_good(session=ctx.session, excluding=release.id)
    waves = plan_of(ctx, rollout)
    wave = waves[rollout.wave_index]
    await actuate(
        ctx,
        "rollback",
        release,
        rollout,
        wave=wave,
        actor=actor,
        reason=reason,
        target=target.version if target else None,
    )
    now = ctx.now()
    if not change_rollout(
        rollout, session=ctx.session, state=RolloutState.rolled_back, finished_at=now
    ):
        raise Conflict(
            f"{release.version} changed just now ({rollout.state}); nothing changed",
            action="rollback",
            subject=subject,
        )
    release.state = ReleaseState.rolled_back
    ctx.session.add(release)
    to = target.version if target else None
    audit(ctx, release, "rollback", actor=actor, reason=reason, detail=f"target {to or 'none'}")
    where = (
        f"to the last known-good release *{to}*"
        if to
        else "with no last known-good release to return to (target null): the deploy system "
        "removes this release without a replacement"
    )
    post_event(
        ctx, rollout, f"⏪ {who(actor)} rolled back *{release.version}* {where}. Reason: {reason}"
    )
    publish_status(ctx, rollout, release)
    return rollout


# ---------------------------------------------------------------- polling and reactions


@dataclass(frozen=True)
class DuePoll:
    metric: Metric
    query: str


def due_polls(ctx: Context, rollout: Rollout) -> list[DuePoll]:
    """The metrics of the current wave whose next poll is due (errors retry sooner)."""
    assert rollout.id is not None
    release = release_of(ctx, rollout)
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    rows = wave_measurements(
        rollout.id, rollout.wave_index, since=rollout.wave_started_at, session=ctx.session
    )
    now = ctx.now()
    due = []
    for metric in ctx.policy.wave_metrics(wave):
        taken = rows.get(metric.id)
        if taken:
            last = taken[-1]
            wait = metric.retry_after_error if last.phase == Phase.error else metric.interval
            if now - last.taken_at < wait:
                continue
        query = render_query(
            metric.query,
            release=release.version,
            wave=wave.name,
            tiers=list(wave.tiers),
            window=format_duration(metric.interval),
        )
        due.append(DuePoll(metric, query))
    return due


def record_readings(
    ctx: Context,
    rollout: Rollout,
    *,
    wave_index: int,
    taken_at: datetime,
    readings: Sequence[tuple[Metric, Reading]],
) -> int:
    """Store one poll per reading, unless the rollout moved on meanwhile. Returns how many."""
    if rollout.state != RolloutState.running or rollout.wave_index != wave_index:
        return 0
    assert rollout.id is not None
    for metric, reading in readings:
        poll = classify(metric, reading)
        add_measurement(
            rollout_id=rollout.id,
            wave_index=wave_index,
            metric=metric.id,
            phase=poll.phase.value,
            value=poll.value,
            detail=poll.detail,
            at=taken_at,
            session=ctx.session,
        )
    return len(readings)


def _only_budgets(judgement: WaveVerdict) -> bool:
    deciding = judgement.deciding
    return bool(deciding) and all(
        m.metric.budget is not None and m.metric.failure is None and m.metric.success is None
        for m in deciding
    )


async def react(ctx: Context, rollout: Rollout) -> Verdict | None:
    """What wavegate does about the current verdict of a running rollout (DESIGN §4)."""
    if rollout.state != RolloutState.running:
        return None
    release = release_of(ctx, rollout)
    waves = plan_of(ctx, rollout)
    wave = waves[rollout.wave_index]
    judgement = judge_rollout(ctx, rollout)
    verdict = judgement.verdict
    index = rollout.wave_index
    try:
        if verdict == Verdict.failed:
            critical = [m.metric.id for m in judgement.deciding if m.metric.critical]
            if critical or wave.auto_rollback:
                why = f"critical metric {', '.join(critical)}" if critical else "auto_rollback"
                await rollback_release(
                    ctx,
                    release,
                    reason=f"automatic rollback ({why}): {judgement.reason}",
                    actor=SYSTEM,
                )
                return verdict
            kind = PauseKind.budget if _only_budgets(judgement) else PauseKind.failed
            await pause_rollout(ctx, rollout, kind=kind, reason=judgement.reason, actor=SYSTEM)
        elif verdict == Verdict.error:
            await pause_rollout(
                ctx, rollout, kind=PauseKind.blind, reason=judgement.reason, actor=SYSTEM
            )
        elif verdict == Verdict.inconclusive:
            await pause_rollout(
                ctx, rollout, kind=PauseKind.inconclusive, reason=judgement.reason, actor=SYSTEM
            )
        elif verdict == Verdict.successful:
            await _wave_ready(ctx, rollout, release, waves)
    except ActuatorUnavailable as err:
        # Left where it was; the next poll tries again. Say so once per state of the rollout.
        detail = f"{err.action}@v{rollout.version}"
        action, subject = err.action or "wave", err.subject or "-"
        if not event_exists(action=action, subject=subject, detail=detail, session=ctx.session):
            note_actuator_failure(ctx, err, actor=SYSTEM, retry=None, detail=detail)
    except Conflict:
        pass  # a person changed the rollout meanwhile; the next poll judges what is there now
    # Written after the reaction, so the deploy system is never awaited inside a write (SQLite's
    # lock); a promotion already started the next wave's verdict afresh.
    if rollout.wave_index == index and rollout.state != RolloutState.complete:
        set_verdict(rollout, verdict.value, session=ctx.session)
    return verdict


async def _wave_ready(ctx: Context, rollout: Rollout, release: Release, waves: list[Wave]) -> None:
    index = rollout.wave_index
    wave = waves[index]
    label = views.wave_label(waves, index)
    held = ""
    if wave.auto_promote:
        try:
            await promote_rollout(ctx, rollout, actor=SYSTEM, request=None, expected_wave=index)
            return
        except GateClosed as err:
            held = f" Auto-promote is held: {err.message}."
    if not mark_ready(rollout, at=ctx.now(), session=ctx.session):
        return  # already offered for this wave
    roles = wave.approvers or ctx.policy.roles_for("wave.promote")
    people = sorted({m for r in roles for m in ctx.policy.roles.get(r, [])})
    who_may = " ".join(mention(p) for p in people) or ", ".join(roles)
    onward = (
        "complete the rollout"
        if index + 1 >= len(waves)
        else f"go to {views.wave_label(waves, index + 1)} ({views.exposure(waves[index + 1])})"
    )
    text = (
        f"✅ {label} of *{release.version}* is ready: observed "
        f"{format_duration(wave.observe)}, every metric passed.{held} {who_may}: promote to "
        f"{onward}."
    )
    post_event(ctx, rollout, text, [views.promote_button(view_of(ctx, rollout, release))])
    audit(ctx, release, "wave.ready", actor=SYSTEM, detail=f"{label} ready for promotion")


# ---------------------------------------------------------------- digest


def daily_digest(ctx: Context) -> bool:
    """One post a day listing the active rollouts; idempotent per UTC day."""
    day = ctx.now().date().isoformat()
    if event_exists(action="wave.digest", subject="rollouts", detail=day, session=ctx.session):
        return False
    active = active_rollouts(session=ctx.session)
    record_event(
        actor=SYSTEM,
        action="wave.digest",
        subject="rollouts",
        outcome=Outcome.ok,
        detail=day,
        at=ctx.now(),
        session=ctx.session,
    )
    if not active:
        text = f"📋 Rollouts on {day}: none active."
    else:
        lines = [f"📋 Rollouts on {day}: {len(active)} active."]
        lines += [views.headline(view_of(ctx, r, rel)) for r, rel in active]
        text = "\n".join(lines)
    announce(ctx, text)
    return True
