"""Shared pieces of the rollout rules: constants, Blocker, small look-ups and the actuator call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commands.announce import announce
from commands.core import CommandError, Conflict, Context, Reply
from commands.policy import Wave
from commands.ports import Action, Actuation, ActuatorFailed
from commands.text import escape
from commands.wave import views
from storage.audit import Outcome, record_event
from storage.models import Incident, Release, Rollout

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
        await ctx.ports.actuator.send(actuation)
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
        # The message carries what the deploy system answered.
        said = f"⚠️ {escape(err.message)}"
        announce(
            ctx,
            said,
            blocks=views.with_buttons(said, buttons),
            thread_key=f"rollout:{err.rollout_id}",
        )
    return buttons


def retry_reply(
    ctx: Context, err: ActuatorUnavailable, *, actor: str, retry: dict[str, Any]
) -> Reply:
    """The answer to an action the deploy system did not confirm: nothing changed, and a Retry
    button runs the same command or button again (every gate checked again)."""
    buttons = note_actuator_failure(ctx, err, actor=actor, retry=retry)
    text = f"{err.title}: {escape(err.message)} Press Retry to try again."
    return Reply(text, blocks=views.with_buttons(text, buttons), error=True)
