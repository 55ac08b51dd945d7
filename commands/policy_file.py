"""Reading a policy file: YAML → `Policy`, every problem reported with its path (DESIGN §3)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from commands.policy import EVERYONE, Policy
from commands.values import _quote


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
