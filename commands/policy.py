"""The policy file: the ops blueprint as code, validated by pydantic models (DESIGN §3)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

# ---------------------------------------------------------------- durations and conditions

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """`90s`, `15m`, `2h`, `3d` → timedelta; anything else, or zero, is an error."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"invalid duration {_quote(value)}")
    if seconds <= 0:
        raise ValueError(f"invalid duration {_quote(value)}: must be positive")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact form: 90s → `90s`, 2h → `2h`, 1d12h → `36h`."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _quote(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return '"' + text.replace('"', '\\"') + '"'


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]

_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_RANGE = re.compile(
    r"^\s*between\s+([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s+"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Condition:
    """One comparison (`>= 0.97`) or an inclusive range (`between 0.9 1.0`)."""

    op: str
    value: float
    upper: float | None = None

    def holds(self, x: float) -> bool:
        if math.isnan(x):
            return False
        match self.op:
            case ">=":
                return x >= self.value
            case "<=":
                return x <= self.value
            case ">":
                return x > self.value
            case "<":
                return x < self.value
            case "==":
                return x == self.value
            case "!=":
                return x != self.value
            case "between":
                assert self.upper is not None
                return self.value <= x <= self.upper
        raise AssertionError(self.op)

    def __str__(self) -> str:
        if self.op == "between":
            return f"between {self.value:g} {self.upper:g}"
        return f"{self.op} {self.value:g}"


def parse_condition(value: object) -> Condition:
    if isinstance(value, Condition):
        return value
    if isinstance(value, str):
        if match := _COMPARISON.match(value):
            return Condition(match.group(1), float(match.group(2)))
        if match := _RANGE.match(value):
            low, high = float(match.group(1)), float(match.group(2))
            if low > high:
                raise ValueError(f"invalid condition {_quote(value)}: the range is empty")
            return Condition("between", low, high)
    raise ValueError(
        f'invalid condition {_quote(value)} (use one comparison like ">= 0.97" '
        'or a range like "between 0.9 1.0")'
    )


ConditionField = Annotated[
    Condition,
    BeforeValidator(parse_condition),
    PlainSerializer(str, return_type=str),
]

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


# ---------------------------------------------------------------- loading and errors


@dataclass(frozen=True)
class PolicyProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PolicyInvalid(Exception):
    def __init__(self, problems: list[PolicyProblem], source: str = "policy") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(str(p) for p in problems))


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"prometheus", "http_json", "demo"} and out.startswith("sources"):
            continue  # the discriminated union adds the source type to the path
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling)"
    if kind == "missing":
        return "required"
    if kind == "union_tag_invalid":
        given = _quote(error["input"].get("type"))
        return f"unknown source type {given} (use prometheus, http_json or demo)"
    if kind == "union_tag_not_found":
        return "a source needs a type (prometheus, http_json or demo)"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _cross_references(policy: Policy) -> list[PolicyProblem]:
    """What pydantic cannot see field by field: names that must point at something defined."""
    problems: list[PolicyProblem] = []
    roles = set(policy.roles) | {EVERYONE}
    metric_ids = [m.id for m in policy.metrics]
    tiers = set(policy.tiers)

    def dupes(ids: list[str], path: str) -> None:
        seen: set[str] = set()
        for index, ident in enumerate(ids):
            if ident in seen:
                problems.append(PolicyProblem(f"{path}[{index}].id", f"duplicate id {ident!r}"))
            seen.add(ident)

    dupes([item.id for item in policy.checklist], "checklist")
    dupes(metric_ids, "metrics")
    dupes([slo.id for slo in policy.slos], "slos")
    for action, allowed in policy.permissions.items():
        for index, role in enumerate(allowed):
            if role not in roles:
                problems.append(
                    PolicyProblem(f"permissions.{action}[{index}]", f"unknown role {role!r}")
                )
    for index, item in enumerate(policy.checklist):
        for m_index, metric in enumerate(item.verify.metrics):
            if metric not in metric_ids:
                problems.append(
                    PolicyProblem(
                        f"checklist[{index}].verify.metrics[{m_index}]",
                        f"unknown metric {metric!r}",
                    )
                )
    for plan, waves in policy.plans.items():
        if not waves:
            problems.append(PolicyProblem(f"plans.{plan}", "a plan needs at least one wave"))
        names: set[str] = set()
        for index, wave in enumerate(waves):
            where = f"plans.{plan}[{index}]"
            if wave.name in names:
                problems.append(PolicyProblem(f"{where}.name", f"duplicate wave {wave.name!r}"))
            names.add(wave.name)
            for t_index, tier in enumerate(wave.tiers):
                if tier not in tiers:
                    problems.append(
                        PolicyProblem(f"{where}.tiers[{t_index}]", f"unknown tier {tier!r}")
                    )
            for a_index, role in enumerate(wave.approvers):
                if role not in roles:
                    problems.append(
                        PolicyProblem(f"{where}.approvers[{a_index}]", f"unknown role {role!r}")
                    )
            for m_index, metric in enumerate(wave.metrics or []):
                if metric not in metric_ids:
                    problems.append(
                        PolicyProblem(f"{where}.metrics[{m_index}]", f"unknown metric {metric!r}")
                    )
    for index, defined in enumerate(policy.metrics):
        if defined.source not in policy.sources:
            problems.append(
                PolicyProblem(f"metrics[{index}].source", f"unknown source {defined.source!r}")
            )
        elif not defined.query and policy.sources[defined.source].type == "prometheus":
            problems.append(
                PolicyProblem(f"metrics[{index}].query", "a Prometheus metric needs a query")
            )
    for index, slo in enumerate(policy.slos):
        if slo.source not in policy.sources:
            problems.append(
                PolicyProblem(f"slos[{index}].source", f"unknown source {slo.source!r}")
            )
    return problems


def parse_policy(text: str, *, source: str = "policy") -> Policy:
    """Read YAML text into a Policy; every problem is reported, each with its path."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyInvalid([PolicyProblem(where, f"not valid YAML: {problem}")], source) from None
    if not isinstance(data, dict):
        raise PolicyInvalid(
            [PolicyProblem("", "a policy file is a YAML mapping starting with `version: 1`")],
            source,
        )
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = [PolicyProblem(_path(err["loc"]), _message(err)) for err in exc.errors()]
        raise PolicyInvalid(problems, source) from None
    problems = _cross_references(policy)
    if problems:
        raise PolicyInvalid(problems, source)
    return policy


def builtin_policy() -> Policy:
    """The blueprint policy that ships with wavegate (commands/blueprint.yml)."""
    text = resources.files("commands").joinpath("blueprint.yml").read_text(encoding="utf-8")
    return parse_policy(text, source="built-in blueprint policy")


def load_policy(path: str | Path | None) -> Policy:
    if path is None:
        return builtin_policy()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyInvalid(
            [PolicyProblem("", f"cannot read {file}: {exc.strerror}")], str(file)
        ) from None
    return parse_policy(text, source=str(file))
