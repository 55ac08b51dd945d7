"""The actuator port: how wave rules tell the deploy system to change exposure.

`bot/actuator.py` implements it as a signed webhook; with no `actuator` in the policy every
action succeeds locally (the console).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from commands.core import Context

Action = Literal["start", "promote", "pause", "resume", "rollback"]


@dataclass(frozen=True)
class Actuation:
    """One webhook call; the field names are the JSON body's (DESIGN §1)."""

    action: Action
    release: str
    wave: str | None
    tiers: list[str] = field(default_factory=list)
    percent: float | None = None
    target: str | None = None
    actor: str = "wavegate"
    reason: str | None = None
    # The same across retries of one action, so the deploy system can drop duplicates.
    idempotency_key: str = ""

    def body(self) -> dict[str, Any]:
        return asdict(self)


class ActuatorFailed(Exception):
    """The deploy system did not confirm the action after every retry."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts


class Actuator(Protocol):
    async def send(self, actuation: Actuation) -> None:
        """Deliver the action or raise ActuatorFailed."""
        ...


class LocalActuator:
    """No deploy system configured: every action succeeds here (console, tests)."""

    def __init__(self) -> None:
        self.sent: list[Actuation] = []

    async def send(self, actuation: Actuation) -> None:
        self.sent.append(actuation)


_LOCAL = LocalActuator()


def actuator_of(ctx: Context) -> Actuator:
    found: Actuator | None = ctx.services.get("actuator")
    return found if found is not None else _LOCAL
