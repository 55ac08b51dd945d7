"""`/wave plan`: what a plan commits a release to, wave by wave, before anyone starts it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from commands.core import Invocation, NotFound, Reply
from commands.policy import EVERYONE, HttpJsonSource, Metric, Policy, PrometheusSource, Wave
from commands.ready.checklist import evaluate
from commands.text import said
from commands.values import format_duration
from commands.wave import views
from storage.releases import get_release
from storage.rollouts import rollout_of

USAGE = "/wave plan [PLAN] [RELEASE]"
# How late a due poll may start. The poll loop wakes when the next metric is due and looks at
# least every second (bot/jobs/waves.py), but a cycle over many rollouts takes seconds of its
# own, so every worst case below adds this allowance once per poll.
POLL_LOOP = timedelta(seconds=5)
# The actuator's first retry waits this long and each next one twice as long (bot/actuator.py).
ACTUATOR_BACKOFF = timedelta(seconds=0.5)


@dataclass(frozen=True)
class WaveTiming:
    """The numbers of one wave: the least time before it may be promoted, and the worst cases."""

    wave: Wave
    least: timedelta
    # Worst case from a failure starting to the wave pausing (or rolling back); None when no
    # counted metric judges this wave.
    detect: timedelta | None
    detect_by: str
    # Worst case from a metric source going dark to the blind pause.
    blind: timedelta | None
    blind_by: str


def _source_timeout(policy: Policy, metric: Metric) -> timedelta:
    source = policy.sources.get(metric.source)
    if isinstance(source, PrometheusSource | HttpJsonSource):
        return source.timeout
    return timedelta(0)


def detect_failure(metric: Metric) -> timedelta:
    """A failure that starts just after a poll is seen by `failure_limit + 1` failed polls, one
    interval apart, each up to one poll loop late."""
    return (metric.failure_limit + 1) * (metric.interval + POLL_LOOP)


def detect_blind(policy: Policy, metric: Metric) -> timedelta:
    """A source that stops answering: the first error comes an interval after the last good
    poll, then `consecutive_error_limit` retries `error_retry` apart, each up to a timeout."""
    each = POLL_LOOP + _source_timeout(policy, metric)
    return (metric.interval + each) + metric.consecutive_error_limit * (
        metric.retry_after_error + each
    )


def least_wait(metrics: Sequence[Metric], wave: Wave) -> timedelta:
    """The window, or longer when a metric needs more samples than the window holds."""
    counted = [m for m in metrics if not m.dry_run]
    samples = [(m.min_samples - 1) * m.interval for m in counted]
    return max([wave.observe, *samples])


def wave_timing(policy: Policy, wave: Wave) -> WaveTiming:
    counted = [m for m in policy.wave_metrics(wave) if not m.dry_run]
    detect, detect_by, blind, blind_by = None, "", None, ""
    if counted:
        slowest = max(counted, key=detect_failure)
        detect, detect_by = detect_failure(slowest), slowest.id
        darkest = max(counted, key=lambda m: detect_blind(policy, m))
        blind, blind_by = detect_blind(policy, darkest), darkest.id
    return WaveTiming(wave, least_wait(counted, wave), detect, detect_by, blind, blind_by)


def actuator_worst(policy: Policy) -> timedelta:
    """One call to the deploy system that fails until its last retry: every attempt times out
    and every backoff is waited."""
    if policy.actuator is None:
        return timedelta(0)
    retries: int = policy.actuator.retries
    timeout: timedelta = policy.actuator.timeout
    return timeout * (retries + 1) + ACTUATOR_BACKOFF * ((1 << retries) - 1)


def who_promotes(policy: Policy, wave: Wave) -> str:
    if wave.auto_promote:
        return "automatic when the window passes"
    holders = policy.roles_for("wave.promote")
    if wave.approvers:
        allowed = [role for role in wave.approvers if role in holders or EVERYONE in holders]
        return "by its approvers: " + (", ".join(allowed) or "nobody (check the policy)")
    return "by " + (", ".join(holders) or "nobody")


def short(delta: timedelta) -> str:
    """A duration in its two largest units, sub-seconds rounded up: 2m 10s, 1h 5m, 8d 2h."""
    seconds = -(-delta // timedelta(seconds=1))
    parts: list[tuple[int, str]] = []
    for name, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count or parts:
            parts.append((count, name))
        if len(parts) == 2:
            break
    return " ".join(f"{count}{name}" for count, name in parts if count) or "0s"


def rollback_line(policy: Policy, wave: Wave, timing: WaveTiming) -> str:
    call = actuator_worst(policy)
    tell = (
        f"the deploy system answers within {short(call)}"
        if policy.actuator is not None
        else "no deploy system is configured"
    )
    critical = [m.id for m in policy.wave_metrics(wave) if m.critical and not m.dry_run]
    if timing.detect is None:
        return f"by hand (`/rollback`); {tell}"
    if wave.auto_rollback or critical:
        why = "auto_rollback" if wave.auto_rollback else "critical " + ", ".join(critical)
        return f"automatic ({why}) within {short(timing.detect + call)}; {tell}"
    roles = ", ".join(policy.roles_for("rollback")) or "nobody"
    return (
        f"paused within {short(timing.detect + call)}, then rolled back when one of {roles} "
        f"confirms; {tell}"
    )


def preview(policy: Policy, plan: str) -> tuple[str, list[WaveTiming]]:
    waves = policy.plans[plan]
    timings = [wave_timing(policy, wave) for wave in waves]
    total = sum((t.least for t in timings), timedelta(0))
    by_hand = sum(1 for wave in waves if not wave.auto_promote)
    lines = [f"*Plan {plan}*: {len(waves)} waves."]
    for index, timing in enumerate(timings):
        wave = timing.wave
        lines.append(
            f"{index + 1}. *{wave.name}* — {views.exposure(wave)}, window "
            f"{format_duration(wave.observe)}, least {short(timing.least)}; promotion "
            f"{who_promotes(policy, wave)}"
        )
        if timing.detect is None:
            lines.append("    no metric judges this wave: the window alone decides")
        else:
            assert timing.blind is not None
            lines.append(
                f"    a failure is caught within {short(timing.detect)} ({timing.detect_by}); "
                f"a silent source within {short(timing.blind)} ({timing.blind_by})"
            )
        lines.append(f"    rollback: {rollback_line(policy, wave, timing)}")
    people = f", plus {by_hand} promotions by people" if by_hand else ""
    lines.append(f"Least time to 100 %: {short(total)}{people}.")
    lines.append(
        f"Worst cases allow each poll to start up to {format_duration(POLL_LOOP)} late and "
        "count the source's timeout per errored poll."
    )
    return "\n".join(lines), timings


def _release_note(inv: Invocation, version: str) -> str:
    release = get_release(version, session=inv.ctx.session)
    if release is None:
        plans = ", ".join(inv.ctx.policy.plans) or "none"
        raise NotFound(
            f"{version!r} is neither a plan (plans: {plans}) nor a registered release",
            usage=USAGE,
        )
    rollout = rollout_of(release, session=inv.ctx.session)
    if rollout is not None:
        return (
            f"{release.version} already has a rollout ({said(rollout.state)}, plan {rollout.plan})."
        )
    missing = evaluate(release, inv.ctx).missing
    if missing:
        names = ", ".join(status.item.id for status in missing)
        return f"{release.version} cannot start yet: checklist items {names} are not done."
    return f"{release.version} is ready: `/wave start {release.version}` starts it."


async def show_plan(inv: Invocation) -> Reply:
    """Preview a plan: each wave's tiers, exposure, window and who promotes it, the least time
    to 100 %, and the worst-case time to catch a failure and to roll back.

    PLAN defaults to `default`; with RELEASE, also whether that release may start now.
    Nothing changes.
    """
    words = list(inv.words)
    plans = inv.ctx.policy.plans
    plan = "default"
    if words and words[0] in plans:
        plan = words.pop(0)
    if len(words) > 1:
        raise inv.usage_error("too many words: give at most a PLAN and a RELEASE")
    if plan not in plans:
        known = ", ".join(plans) or "none"
        raise inv.usage_error(f"the policy has no plan {plan!r}; plans: {known}")
    text, _ = preview(inv.ctx.policy, plan)
    if words:
        text += "\n" + _release_note(inv, words[0])
    return Reply(text)
