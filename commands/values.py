"""The policy file's value types: durations, conditions, Slack ids, identifiers, severities."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

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


def _severity_key(value: object) -> int:
    text = str(value).lower().removeprefix("sev")
    if text not in {"1", "2", "3", "4"}:
        raise ValueError(f"invalid severity {_quote(value)} (use sev1 to sev4)")
    return int(text)


SeverityKey = Annotated[int, BeforeValidator(_severity_key)]
