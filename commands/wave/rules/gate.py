"""The gate: the current wave's verdict and everything that keeps it from being promoted."""

from __future__ import annotations

from collections.abc import Mapping

from commands.access import in_role, require
from commands.analysis.judge import Verdict, WaveVerdict
from commands.analysis.standing import wave_standing
from commands.analysis.verdicts import judge_tallies, metric_links
from commands.core import Context, Forbidden, Request
from commands.incident.proofs import blockers as proof_blockers
from commands.policy import Wave
from commands.text import span
from commands.values import format_duration
from commands.wave import views
from commands.wave.rules.base import Blocker, plan_of, release_of, window_passed
from storage.incidents import open_incidents
from storage.models import Release, Rollout, RolloutState
from storage.rollouts import ACTIVE
from storage.tallies import TallyRow


def judge_rollout(
    ctx: Context, rollout: Rollout, *, tallies: Mapping[str, TallyRow] | None = None
) -> WaveVerdict:
    """The current wave's verdict from the polls taken since it started (or was resumed), as
    their tallies count them (`tallies`: the wave's stored tallies, when read already)."""
    assert rollout.id is not None
    wave = plan_of(ctx, rollout)[rollout.wave_index]
    passed = window_passed(ctx, rollout, wave)
    standing = wave_standing(
        (rollout.id, rollout.wave_index),
        rollout.wave_started_at,
        ctx.policy.wave_metrics(wave),
        session=ctx.session,
        rows=tallies,
    )
    return judge_tallies(ctx.policy, wave, standing, window_passed=passed)


def view_of(ctx: Context, rollout: Rollout, release: Release | None = None) -> views.RolloutView:
    release = release or release_of(ctx, rollout)
    judgement = judge_rollout(ctx, rollout) if rollout.state in ACTIVE else None
    links = metric_links(ctx.policy, judgement)
    return views.RolloutView(rollout, release, plan_of(ctx, rollout), judgement, ctx.now(), links)


# A poll batch (bot/jobs/poll_steps.py) judges and publishes many rollouts in one unit of work
# that changes no incident or proof: it reads these blockers once, kept in the session's info.
KNOWN_BLOCKERS = "wavegate.incident_blockers"


def keep_incident_blockers(ctx: Context) -> None:
    """Read the incident and proof blockers once for the rest of this unit of work; only for a
    unit that changes no incident and no proof."""
    ctx.session.info[KNOWN_BLOCKERS] = incident_blockers(ctx)


def incident_blockers(ctx: Context) -> list[Blocker]:
    known = ctx.session.info.get(KNOWN_BLOCKERS)
    if known is not None:
        return list(known)
    return [
        Blocker(
            "incident",
            f"incident #{i.id} (sev{i.severity} {i.incident_class}: {i.summary}) is open",
            i,
        )
        for i in open_incidents(session=ctx.session, max_severity=2)
    ] + [Blocker("proof", text) for text in proof_blockers(ctx)]


def promotion_blockers(ctx: Context, rollout: Rollout) -> list[Blocker]:
    """Everything that keeps the current wave from being promoted, in plain words."""
    waves = plan_of(ctx, rollout)
    wave = waves[rollout.wave_index]
    label = views.wave_label(waves, rollout.wave_index)
    blockers: list[Blocker] = []
    if rollout.state == RolloutState.paused:
        why = views.PAUSE_WORDS.get(rollout.pause_kind or "", rollout.pause_kind or "")
        blockers.append(
            Blocker(
                "paused",
                f"it is paused ({why}): {rollout.paused_reason or 'no reason given'}; "
                "resume it first",
            )
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
