"""The policy file's models: the ops blueprint as code, validated by pydantic (DESIGN §3).

Value types (durations, conditions) are in `commands/values.py`; reading a file is
`commands/policy_file.py`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from commands.policy_incidents import Alerts, Archive, FollowUps, Paging, Proof, Stakeholders
from commands.values import (
    ConditionField,
    Duration,
    Identifier,
    SeverityKey,
    SlackMember,
    Strict,
)

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
    "rollback.request": ["everyone"],
    "incident.declare": ["everyone"],
    "incident.update": ["everyone"],
    "incident.resolve": ["incident-commanders", "release-managers"],
    "incident.followup": ["everyone"],
    "incident.followup.waive": ["incident-commanders", "release-managers"],
    "incident.role": ["incident-commanders", "release-managers"],
    "incident.stakeholders": ["everyone"],
}
EVERYONE = "everyone"


class Channels(Strict):
    rollouts: str | None = None
    incidents: str | None = None
    incident_prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,20}$")] = "inc"
    # The workspace's address (https://acme.slack.com): replies link to a message's thread
    # in the form Slack's permalinks take. None: the reply names the thread in words.
    workspace_url: Annotated[str, Field(pattern=r"^https://[^\s/]+/?$")] | None = None


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


class Score(Strict):
    """The share of decided comparisons that passed: at or above `pass` the wave's comparisons
    pass, at or above `marginal` a person decides (inconclusive), below they fail."""

    pass_: Annotated[float, Field(ge=0, le=100, alias="pass")] = 95.0
    marginal: Annotated[float, Field(ge=0, le=100)] = 75.0

    @model_validator(mode="after")
    def _ordered(self) -> Score:
        if self.marginal > self.pass_:
            raise ValueError(
                f"marginal ({self.marginal:g}) must not be above pass ({self.pass_:g})"
            )
        return self


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
    # A Kayenta-style summary score over the wave's compared metrics (DESIGN §4).
    score: Score | None = None


class PrometheusSource(Strict):
    type: Literal["prometheus"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    # Where people look at a query (Prometheus's own UI, Grafana Explore…): metric lines link
    # to `{ui_url}/graph?g0.expr=QUERY`. None: no links.
    ui_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
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


LAST_KNOWN_GOOD = "last_known_good"


class Compare(Strict):
    """Judge the metric against a baseline instead of thresholds: the query's samples over the
    wave (Prometheus `query_range`) for the release in the wave and for the baseline, by a
    Mann-Whitney U test (commands/analysis/baseline.py)."""

    # `last_known_good`: the same query with {release} set to the newest completed release;
    # anything else is the baseline's own query (templated the same way).
    baseline: str = Field(default=LAST_KNOWN_GOOD, min_length=1)
    # Which change is bad.
    direction: Literal["increase", "decrease", "either"] = "increase"
    # A relative change of the medians allowed even when significant: 0.25 is "25 % worse".
    tolerance: Annotated[float, Field(ge=0)] = 0.25
    # 1 - the p-value needed to call a change significant.
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.98
    # Samples needed on each side before the test runs.
    min_samples: Annotated[int, Field(ge=3)] = 10
    # query_range's resolution: one sample per step.
    step: Duration = timedelta(seconds=30)

    @property
    def explicit(self) -> bool:
        return self.baseline != LAST_KNOWN_GOOD


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
    # A baseline comparison instead of (or beside) thresholds.
    compare: Compare | None = None
    # For a budget: the units the wave's cohort uses per day (a query, templated like `query`),
    # so the promote card forecasts the next wave's and 100 %'s daily cost.
    volume: str | None = None

    @model_validator(mode="after")
    def _has_a_condition(self) -> Metric:
        if (
            self.success is None
            and self.failure is None
            and self.budget is None
            and self.compare is None
        ):
            raise ValueError("a metric needs a success, failure, budget or compare condition")
        if self.compare is not None and (self.success or self.failure or self.budget):
            raise ValueError(
                "a compared metric is judged by its comparison alone: drop the conditions"
            )
        if self.volume is not None and self.budget is None:
            raise ValueError("volume forecasts a budget's cost: it needs a budget condition")
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
    alerts: Alerts = Alerts()
    followups: FollowUps = FollowUps()
    proofs: list[Proof] = []
    paging: Paging | None = None
    stakeholders: Stakeholders | None = None
    archive: Archive | None = None

    @model_validator(mode="after")
    def _proofs_point_at_something(self) -> Policy:
        seen: set[str] = set()
        for index, proof in enumerate(self.proofs):
            if proof.id in seen:
                raise ValueError(f"proofs[{index}].id: duplicate id {proof.id!r}")
            seen.add(proof.id)
            if proof.source is not None and proof.source not in self.sources:
                raise ValueError(f"proofs[{index}].source: unknown source {proof.source!r}")
            for name in proof.classes:
                if self.incidents and name not in self.incidents:
                    raise ValueError(f"proofs[{index}].classes: unknown class {name!r}")
        return self

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

    def metric_path(self, metric: Metric) -> str:
        """Where a metric is written in the policy file: `metrics[3]`."""
        for index, candidate in enumerate(self.metrics):
            if candidate.id == metric.id:
                return f"metrics[{index}]"
        return f"metric {metric.id}"

    def proof(self, proof_id: str) -> Proof | None:
        return next((proof for proof in self.proofs if proof.id == proof_id), None)

    def wave_metrics(self, wave: Wave) -> list[Metric]:
        if wave.metrics is None:
            return list(self.metrics)
        return [m for m in self.metrics if m.id in wave.metrics]
