"""The ports: what a rule may use besides the database, typed and wired once by the bot.

- the actuator tells the deploy system to change exposure (`bot/actuator.py`: a signed webhook;
  with no `actuator` in the policy every action succeeds locally, as in the console);
- the metric sources read measurements (`bot/sources/`);
- the incident chat creates channels, opens forms, uploads postmortems and archives channels
  (`bot/slack/chat.py`, `bot/console/chat.py`).
  Posts do not go through it: they go through the outbox (`commands/announce.py`).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from commands.analysis.measure import MetricSource

# `verify` asks the deploy system whether a release (the last known-good) is still deployable;
# it changes nothing (a proof of the rollback path, commands/incident/proofs.py).
Action = Literal["start", "promote", "pause", "resume", "rollback", "verify"]


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

    def json(self) -> str:
        """The body as sent, and as a claim keeps it for a re-send (DESIGN §10)."""
        return json.dumps(self.body(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Actuation:
        return cls(**json.loads(text))


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


class NameTaken(Exception):
    """A channel of that name exists already; the caller tries another name."""


@dataclass(frozen=True)
class Channel:
    id: str
    name: str


class IncidentChat(Protocol):
    async def create_channel(self, name: str) -> Channel:
        """Create a public channel; raises NameTaken when the name is in use."""

    async def invite(self, channel: str, users: list[str]) -> None:
        """Invite users (U…/W… ids). People already there, or not invitable, are skipped."""

    async def set_topic(self, channel: str, topic: str) -> None: ...

    async def open_modal(self, trigger_id: str | None, view: dict[str, Any]) -> bool:
        """Open a form with the trigger of the request that asks for it; False when none can be
        opened (no Slack trigger, as in the console)."""

    async def message_text(self, channel: str, ts: str) -> str | None:
        """The text of one message (for a message pinned by reaction), None when unreadable."""

    async def upload_file(
        self, channel: str, *, filename: str, title: str, content: str, comment: str
    ) -> str | None:
        """Upload a text file to the channel (files.uploadV2); its permalink, or None when Slack
        gave none. Raises ChatFailed when the upload is refused. Call it outside a transaction."""

    async def archive_channel(self, channel: str) -> None:
        """Archive the channel; raises ChatFailed when Slack refuses (not_in_channel, …)."""


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Ports:
    """The services handed to every command, button, job and API call through `Context`."""

    # Names this process on the claims it sends, so a recovering leader can tell its own
    # in-flight actions from those a crashed process left (commands/wave/rules/actuation.py).
    instance: str = field(default_factory=instance_name)
    actuator: Actuator = field(default_factory=LocalActuator)
    sources: Mapping[str, MetricSource] = field(default_factory=dict)
    # None where no chat system is connected: incident channels cannot be made.
    chat: IncidentChat | None = None
