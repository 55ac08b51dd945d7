"""Shared pieces of the rollout rules: constants, Blocker, small look-ups, the Retry reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commands.core import CommandError, Conflict, Context, Reply
from commands.policy import Wave
from commands.text import escape
from commands.wave import views
from storage.models import Incident, Release, Rollout

SYSTEM = "wavegate"


class ActuatorUnavailable(CommandError):
    """The deploy system did not confirm an action; the rollout stays where it was."""

    title = "Deploy system unavailable"
    audited = True

    def __init__(self, message: str, *, action: str, subject: str, rollout_id: int | None) -> None:
        super().__init__(message, action=action, subject=subject)
        self.rollout_id = rollout_id
        # The Retry button offered in the thread, for the reply too.
        self.buttons: list[Any] = []


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


def retry_reply(err: ActuatorUnavailable) -> Reply:
    """The answer to an action the deploy system did not confirm: nothing changed (the claim
    was released, the thread told: commands/wave/rules/actuation.py), and a Retry button runs
    the same command or button again, every gate checked again."""
    text = f"{err.title}: {escape(err.message)} Press Retry to try again."
    return Reply(text, blocks=views.with_buttons(text, err.buttons), error=True)
