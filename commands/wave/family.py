"""`/wave`: start, watch, promote, pause, resume a rollout, and read its history."""

from __future__ import annotations

from typing import Any

from commands.access import require
from commands.core import Family, Invocation, NotFound, Reply
from commands.limits import MESSAGE_BLOCKS, MESSAGE_TEXT, fit_blocks, fit_text, pack_sections
from commands.text import said
from commands.values import format_duration
from commands.wave import listing, plan, views
from commands.wave.parse import force_option, named_release, no_extra_words, pick_rollout
from commands.wave.rules.advance import promote_rollout, start_rollout
from commands.wave.rules.base import (
    ActuatorUnavailable,
    plan_of,
    retry_reply,
    subject_of,
)
from commands.wave.rules.gate import view_of
from commands.wave.rules.pause import pause_rollout, resume_rollout
from storage.audit import events_for
from storage.measurements import raw_tallies, wave_summaries
from storage.models import PauseKind, Release, Rollout, RolloutState
from storage.releases import get_release
from storage.rollouts import (
    active_rollouts,
    live_rollout_counts,
    rollout_of,
    starting_rollouts,
)

# Up to this many active rollouts, `/wave status` shows each with its metrics; beyond it, one line
# each (at most LISTED), since judging every rollout would outlast Slack's 3-second ack.
DETAILED = 5
LISTED = 40
# The newest events `/wave history` pages through.
HISTORY_KEPT = 1000

family = Family("wave", "rollout waves: start, watch, promote, pause, resume", default="status")
family.command("plan", plan.USAGE)(plan.show_plan)


def _retry(inv: Invocation) -> dict[str, Any]:
    """What a Retry button runs if the deploy system says no: the same command again."""
    return {"command": inv.request.command, "text": inv.request.text}


@family.command("status", "/wave status [RELEASE]")
async def show_status(inv: Invocation) -> Reply:
    """Every active rollout: its wave, time observed of the window, metric verdicts and values.

    With RELEASE: that release's rollout, finished or not.
    """
    ctx = inv.ctx
    if inv.words:
        release = named_release(inv)
        if release is None:
            raise NotFound(f"no release {inv.words[0]!r} is registered", usage=inv.sub.usage)
        if len(inv.words) > 1:
            raise inv.usage_error("too many words: give at most one release")
        rollout = rollout_of(release, session=ctx.session)
        if rollout is None:
            return Reply(
                f"{release.version} ({said(release.state)}) has no rollout yet. Start it with "
                f"`/wave start {release.version}`."
            )
        pairs: list[tuple[Rollout, Release]] = [(rollout, release)]
    else:
        total, starts = live_rollout_counts(session=ctx.session)
        # Starts claimed and not yet confirmed are shown too, as in progress (DESIGN §10).
        starting = starting_rollouts(session=ctx.session) if starts else []
        if total == 0 and not starting:
            return Reply("No rollout is active. Start one with `/wave start RELEASE [PLAN]`.")
        if total > DETAILED:
            listed = [
                views.RolloutView(rollout, release, plan_of(ctx, rollout), None, ctx.now())
                for rollout, release in [
                    *starting,
                    *active_rollouts(session=ctx.session, limit=LISTED),
                ]
            ]
            text, blocks = listing.overview(listed, total=total)
            return Reply(text, blocks=blocks)
        pairs = [*starting, *active_rollouts(session=ctx.session)]
    texts, blocks = [], []
    for rollout, release in pairs:
        view = view_of(ctx, rollout, release)
        texts.append(views.status_text(view))
        # An ephemeral reply: only the buttons this person may press.
        allowed = views.viewer_may(ctx.policy, inv.request, view.wave)
        blocks += views.status_blocks(view, allowed)
    return Reply(
        fit_text("\n\n".join(texts), MESSAGE_TEXT, more="… see the App Home."),
        blocks=fit_blocks(blocks, where="see the App Home"),
    )


@family.command("start", "/wave start RELEASE [PLAN] [--force REASON]", answers_in_ack=False)
async def start(inv: Invocation) -> Reply:
    """Start a rollout of RELEASE through PLAN (default: `default`).

    Refused while the readiness checklist is incomplete or a severity 1-2 incident is open;
    an approver may override the incident gate with `--force REASON`.
    """
    words, force = force_option(inv, inv.words)
    if not words:
        raise inv.usage_error("missing RELEASE")
    if len(words) > 2:
        raise inv.usage_error("too many words: give RELEASE and at most one PLAN")
    release = get_release(words[0], session=inv.ctx.session)
    if release is None:
        raise NotFound(
            f"no release {words[0]!r} is registered; register it with `/ready new {words[0]}`",
            usage=inv.sub.usage,
        )
    plan = words[1] if len(words) > 1 else "default"
    if plan not in inv.ctx.policy.plans:
        plans = ", ".join(inv.ctx.policy.plans) or "none"
        raise inv.usage_error(f"the policy has no plan {plan!r}; plans: {plans}")
    try:
        rollout = await start_rollout(
            inv.ctx,
            release,
            plan,
            actor=inv.actor,
            request=inv.request,
            force_reason=force,
            retry=_retry(inv),
        )
    except ActuatorUnavailable as err:
        return retry_reply(err)
    wave = inv.ctx.policy.plans[plan][0]
    return Reply(
        f"Started {release.version} (plan {plan}): wave 1 ({wave.name}) — "
        f"{views.exposure(wave)}, observed for {format_duration(wave.observe)}. "
        f"Rollout #{rollout.id}; its status is posted in the rollouts channel."
    )


@family.command("promote", "/wave promote [RELEASE] [--force REASON]", answers_in_ack=False)
async def promote(inv: Invocation) -> Reply:
    """Advance one wave; past the last wave the rollout completes.

    Refused, with the exact reason, unless the window has passed with enough valid samples,
    the wave's verdict is successful and no severity 1-2 incident is open. `--force REASON`
    lets an approver override those gates (never the permission check); the reason is audited.
    """
    target = pick_rollout(inv)
    rest, force = force_option(inv, target.rest)
    no_extra_words(inv, rest)
    before = target.rollout.wave_index
    waves = plan_of(inv.ctx, target.rollout)
    try:
        rollout = await promote_rollout(
            inv.ctx,
            target.rollout,
            actor=inv.actor,
            request=inv.request,
            force_reason=force,
            retry=_retry(inv),
        )
    except ActuatorUnavailable as err:
        return retry_reply(err)
    if rollout.state == RolloutState.complete:
        return Reply(
            f"Promoted {views.wave_label(waves, before)}: {target.release.version} is complete."
        )
    return Reply(
        f"Promoted {target.release.version} to {views.wave_label(waves, rollout.wave_index)}"
        f" — {views.exposure(waves[rollout.wave_index])}."
    )


@family.command("pause", "/wave pause [RELEASE] REASON", answers_in_ack=False)
async def pause(inv: Invocation) -> Reply:
    """Stop expansion of a rollout, saying why; it stays paused until someone resumes it."""
    target = pick_rollout(inv)
    reason = " ".join(target.rest).strip()
    if not reason:
        raise inv.usage_error("say why the rollout is paused")
    require(inv.ctx.policy, "wave.pause", inv.request, subject=subject_of(target.release))
    try:
        await pause_rollout(
            inv.ctx,
            target.rollout,
            kind=PauseKind.manual,
            reason=reason,
            actor=inv.actor,
            retry=_retry(inv),
        )
    except ActuatorUnavailable as err:
        return retry_reply(err)
    return Reply(
        f"Paused {target.release.version}. `/wave resume {target.release.version}` continues."
    )


@family.command("resume", "/wave resume [RELEASE]", answers_in_ack=False)
async def resume(inv: Invocation) -> Reply:
    """Continue a paused rollout; its current wave is observed afresh from now."""
    target = pick_rollout(inv)
    no_extra_words(inv, target.rest)
    require(inv.ctx.policy, "wave.resume", inv.request, subject=subject_of(target.release))
    try:
        rollout = await resume_rollout(inv.ctx, target.rollout, actor=inv.actor, retry=_retry(inv))
    except ActuatorUnavailable as err:
        return retry_reply(err)
    waves = plan_of(inv.ctx, rollout)
    return Reply(
        f"Resumed {target.release.version}: {views.wave_label(waves, rollout.wave_index)} is "
        f"observed for {format_duration(waves[rollout.wave_index].observe)} from now."
    )


@family.command("history", "/wave history [RELEASE] [PAGE]")
async def history(inv: Invocation) -> Reply:
    """The audit trail of a release, newest first, in pages: who did what, when and why
    (refusals included). `/wave history 1.0 2` (or `--page 2`) shows older events."""
    words = list(inv.words)
    page = 1
    if "--page" in words:
        at = words.index("--page")
        if at + 1 >= len(words) or not words[at + 1].isdigit():
            raise inv.usage_error("--page needs a number")
        page = int(words[at + 1])
        del words[at : at + 2]
    elif words and words[-1].isdigit() and (len(words) > 1 or named_release(inv) is None):
        page = int(words.pop())
    if len(words) > 1:
        raise inv.usage_error("too many words: give at most one release and a page")
    paged = Invocation(inv.request, inv.ctx, words, inv.sub)
    if words and named_release(paged) is None:
        raise NotFound(f"no release {words[0]!r} is registered", usage=inv.sub.usage)
    release = named_release(paged) or pick_rollout(paged, finished_ok=True).release
    events = events_for(subject_of(release), session=inv.ctx.session, limit=HISTORY_KEPT)
    if not events:
        return Reply(f"Nothing has happened to {release.version} yet.")
    text, blocks = listing.history_page(release.version, release.state, events, page)
    rollout = rollout_of(release, session=inv.ctx.session)
    measured = _measurement_lines(inv, rollout) if rollout is not None and page == 1 else []
    if measured:
        text = fit_text("\n".join([text, *measured]), MESSAGE_TEXT, more="… (see the blocks)")
        blocks = [*blocks, *pack_sections(measured)][:MESSAGE_BLOCKS]
    return Reply(text, blocks=blocks)


def _figure(name: str, value: float | None) -> str:
    return "" if value is None else f" · {name} {value:.4g}"


def _measurement_lines(inv: Invocation, rollout: Rollout) -> list[str]:
    """Each wave's metrics: from the summaries of rolled-up waves (commands/analysis/retention.py)
    and, for waves whose polls are still raw, counted from them."""
    assert rollout.id is not None
    waves = inv.ctx.policy.plans.get(rollout.plan, [])

    def label(index: int) -> str:
        return views.wave_label(waves, index) if index < len(waves) else f"wave {index + 1}"

    rows: list[tuple[int, str, str]] = []
    for s in wave_summaries(rollout.id, session=inv.ctx.session):
        phases = {"successful": s.successful, "failed": s.failed}
        phases |= {"inconclusive": s.inconclusive, "error": s.error}
        counted = ", ".join(f"{n} {phase}" for phase, n in phases.items() if n)
        text = f"{s.polls} polls ({counted}){_figure('min', s.min)}{_figure('mean', s.mean)}"
        text += f"{_figure('p50', s.p50)}{_figure('p95', s.p95)}{_figure('max', s.max)}"
        rows.append((s.wave_index, s.metric, text + " (rolled up)"))
    for t in raw_tallies(rollout.id, session=inv.ctx.session):
        counted = ", ".join(f"{n} {phase}" for phase, n in sorted(t.by_phase.items()))
        text = f"{t.polls} polls ({counted}){_figure('min', t.min)}{_figure('mean', t.mean)}"
        rows.append((t.key.wave_index, t.key.metric, text + _figure("max", t.max)))
    if not rows:
        return []
    return ["Measurements:"] + [
        f"{label(index)} · {metric}: {text}" for index, metric, text in sorted(rows)
    ]
