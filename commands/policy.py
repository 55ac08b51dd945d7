"""The policy file's models: the ops blueprint as code, validated by pydantic (DESIGN §3).

Value types (durations, conditions) are in `commands/values.py`; reading a file is
`commands/policy_file.py`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from commands.values import (
    ConditionField,
    Duration,
    _quote,
)

_SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")


def _slack_member(value: object) -> str:
    if not isinstance(value, str) or not _SLACK_ID.match(value):
        raise ValueError(
            f"{_quote(value)} is not a Slack user or user-group id (U…, W… or S…, upper case)"
        )
    return value


SlackMember = Annotated[str, BeforeValidator(_slack_member)]
Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]


class Strict(BaseModel):
    """Unknown keys are errors, so a typo in the policy file surfaces instead of being ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- sections

ACTIONS: dict[str, list[str]] = {
    "ready.new": ["everyone"],
    "ready.check": ["everyone"],
    "ready.fail": ["everyone"],
    "ready.waive": ["release-managers"],
    "wave.start": ["release-managers"],
    "wave.promote": ["release-managers"],
    "wave.pause": ["everyone"],
    "wave.resume": ["release-managers"],
    "wave.force": ["release-managers"],
    "rollback": ["release-managers", "incident-commanders"],
    "incident.declare": ["everyone"],
    "incident.update": ["everyone"],
    "incident.resolve": ["incident-commanders", "release-managers"],
}
EVERYONE = "everyone"


class Channels(Strict):
    rollouts: str | None = None
    incidents: str | None = None
    incident_prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,20}$")] = "inc"


class Verify(Strict):
    by: Literal["person", "ci", "metric"] = "person"
    evidence: Literal["required", "optional"] = "optional"
    checks: list[Identifier] = []
    metrics: list[Identifier] = []

    @model_validator(mode="after")
    def _fits_its_kind(self) -> Verify:
        if self.by == "ci" and not self.checks:
            raise ValueError("verify by ci needs a list of checks")
        if self.by == "metric" and not self.metrics:
            raise ValueError("verify by metric needs a list of metrics")
        if self.by != "ci" and self.checks:
            raise ValueError("checks are only for verify by ci")
        if self.by != "metric" and self.metrics:
            raise ValueError("metrics are only for verify by metric")
        return self


class ChecklistItem(Strict):
    id: Identifier
    title: str
    outcome: str | None = None
    owner: SlackMember | None = None
    verify: Verify = Verify()
    max_age: Duration | None = None


class Wave(Strict):
    name: Identifier
    tiers: list[Identifier] = Field(min_length=1)
    percent: Annotated[float, Field(gt=0, le=100)]
    observe: Duration
    auto_promote: bool = False
    # Roll back without asking when this wave's verdict is `failed`.
    auto_rollback: bool = False
    approvers: list[Identifier] = []
    # None: every metric of the policy is judged.
    metrics: list[Identifier] | None = None


class PrometheusSource(Strict):
    type: Literal["prometheus"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    timeout: Duration = timedelta(seconds=5)
    bearer_token_env: str | None = None
    headers: dict[str, str] = {}


class HttpJsonSource(Strict):
    type: Literal["http_json"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    path: str = Field(min_length=1)
    timeout: Duration = timedelta(seconds=5)
    bearer_token_env: str | None = None
    headers: dict[str, str] = {}


class DemoSource(Strict):
    """A built-in deterministic generator, so the console works with no metric backend."""

    type: Literal["demo"]
    seed: int = 0


Source = Annotated[PrometheusSource | HttpJsonSource | DemoSource, Field(discriminator="type")]


class MinTraffic(Strict):
    """Below `threshold` (the query's value) a poll is inconclusive: too few requests seen."""

    query: str
    threshold: float = Field(ge=0)


class Metric(Strict):
    id: Identifier
    area: str | None = None
    source: Identifier
    query: str = ""
    success: ConditionField | None = None
    failure: ConditionField | None = None
    # A budget (spend efficiency): drifting outside it pauses expansion as `budget`.
    budget: ConditionField | None = None
    interval: Duration = timedelta(minutes=1)
    min_samples: Annotated[int, Field(ge=1)] = 1
    failure_limit: Annotated[int, Field(ge=0)] = 0
    inconclusive_limit: Annotated[int, Field(ge=0)] = 0
    consecutive_error_limit: Annotated[int, Field(ge=0)] = 4
    error_retry: Duration = timedelta(seconds=10)
    on_empty: Literal["inconclusive", "failed", "successful"] = "inconclusive"
    min_traffic: MinTraffic | None = None
    dry_run: bool = False
    critical: bool = False
    unit: str | None = None

    @model_validator(mode="after")
    def _has_a_condition(self) -> Metric:
        if self.success is None and self.failure is None and self.budget is None:
            raise ValueError("a metric needs a success, failure or budget condition")
        return self

    @property
    def retry_after_error(self) -> timedelta:
        return min(self.error_retry, self.interval)


class Slo(Strict):
    id: Identifier
    objective: Annotated[float, Field(gt=0, lt=100)]
    period: Duration = timedelta(days=30)
    errors: str
    total: str
    source: Identifier


class IncidentClass(Strict):
    title: str
    severity: Annotated[int, Field(ge=1, le=4)] = 3
    first_action: str
    steps: list[str] = []
    automations: list[Literal["pause_rollouts", "offer_rollback"]] = []


class Actuator(Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    secret_env: str = "WAVEGATE_ACTUATOR_SECRET"
    timeout: Duration = timedelta(seconds=10)
    retries: Annotated[int, Field(ge=0, le=10)] = 3


def _default_reminders() -> dict[int, timedelta]:
    return {
        1: timedelta(minutes=30),
        2: timedelta(hours=1),
        3: timedelta(hours=4),
        4: timedelta(hours=24),
    }


def _severity_key(value: object) -> int:
    text = str(value).lower().removeprefix("sev")
    if text not in {"1", "2", "3", "4"}:
        raise ValueError(f"invalid severity {_quote(value)} (use sev1 to sev4)")
    return int(text)


SeverityKey = Annotated[int, BeforeValidator(_severity_key)]


class Retention(Strict):
    """How long raw polls of a finished wave are kept before they are rolled up into one summary
    per wave and metric (the current wave of an active rollout always keeps its polls)."""

    measurements: Duration = timedelta(days=14)


class Policy(Strict):
    version: Literal[1]
    channels: Channels = Channels()
    roles: dict[Identifier, list[SlackMember]] = {}
    permissions: dict[str, list[Identifier]] = {}
    checklist: list[ChecklistItem] = []
    tiers: list[Identifier] = []
    plans: dict[Identifier, list[Wave]] = {}
    sources: dict[Identifier, Source] = {}
    metrics: list[Metric] = []
    slos: list[Slo] = []
    incidents: dict[Identifier, IncidentClass] = {}
    # How often an open incident's channel is reminded to post an update, by severity.
    reminders: dict[SeverityKey, Duration] = Field(default_factory=_default_reminders)
    actuator: Actuator | None = None
    retention: Retention = Retention()

    @field_validator("permissions")
    @classmethod
    def _known_actions(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(ACTIONS))
        if unknown:
            raise ValueError(
                f"unknown action {unknown[0]!r} (actions: {', '.join(sorted(ACTIONS))})"
            )
        return value

    # -- look-ups used by the commands

    def roles_for(self, action: str) -> list[str]:
        return self.permissions.get(action, ACTIONS[action])

    def item(self, item_id: str) -> ChecklistItem | None:
        return next((item for item in self.checklist if item.id == item_id), None)

    def metric(self, metric_id: str) -> Metric | None:
        return next((metric for metric in self.metrics if metric.id == metric_id), None)

    def wave_metrics(self, wave: Wave) -> list[Metric]:
        if wave.metrics is None:
            return list(self.metrics)
        return [m for m in self.metrics if m.id in wave.metrics]
