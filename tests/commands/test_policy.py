"""The policy file: the built-in blueprint, the example, and every kind of error with its path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from commands.policy_file import PolicyInvalid, builtin_policy, load_policy, parse_policy
from commands.values import parse_condition, parse_duration
from tests.support.paths import ROOT

EXAMPLE = ROOT / "examples" / "policy.yml"


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(text)
    return [str(p) for p in caught.value.problems]


def test_builtin_policy_encodes_the_blueprint() -> None:
    policy = builtin_policy()
    assert [i.id for i in policy.checklist] == [
        "observability",
        "migration-rollback",
        "concurrency",
        "rotation-documented",
        "cost-guardrails",
        "validation",
    ]
    assert policy.item("validation").verify.checks == ["lint", "typecheck", "test", "db-migrate"]  # type: ignore[union-attr]
    assert policy.tiers == ["staging", "internal", "free", "pro", "enterprise"]
    assert sorted(policy.incidents) == [
        "auth-policy-failure",
        "migration-regression",
        "provider-outage",
        "sandbox-instability",
    ]
    assert policy.incidents["migration-regression"].automations == [
        "pause_rollouts",
        "offer_rollback",
    ]
    assert {s.type for s in policy.sources.values()} == {"demo"}
    areas = {m.area for m in policy.metrics}
    assert {"generation quality", "runtime health", "data layer", "spend efficiency"} <= areas


def test_example_policy_is_valid_and_documents_every_section() -> None:
    policy = load_policy(EXAMPLE)
    raw = yaml.safe_load(EXAMPLE.read_text())
    sections = set(type(policy).model_fields)
    assert sections <= set(raw), f"example lacks {sections - set(raw)}"
    assert policy.plans["default"][4].approvers == ["release-managers"]


def test_design_error_line_for_a_bad_duration() -> None:
    text = """
version: 1
tiers: [a]
plans:
  default:
    - {name: one, tiers: [a], percent: 10, observe: 1h}
    - {name: two, tiers: [a], percent: 50, observe: 1h}
    - {name: three, tiers: [a], percent: 100, observe: 2x}
"""
    assert problems(text) == ['plans.default[2].observe: invalid duration "2x"']


def test_every_problem_is_reported_each_with_its_path() -> None:
    text = """
version: 1
roles: {rm: [u123]}
permissions: {wave.promte: [rm]}
sources: {p: {type: prometheus, url: "http://x"}, q: {type: graphite}}
metrics:
  - {id: m, source: p, query: up, success: ">= x"}
checklist:
  - {id: a, title: A, verify: {by: ci}}
  - {id: b, title: B, colour: red}
"""
    found = problems(text)
    assert (
        'roles.rm[0]: "u123" is not a Slack user or user-group id (U…, W… or S…, upper case)'
        in found
    )
    assert any(p.startswith("permissions: unknown action 'wave.promte'") for p in found)
    assert any(p.startswith('sources.q: unknown source type "graphite"') for p in found)
    assert any(p.startswith('metrics[0].success: invalid condition ">= x"') for p in found)
    assert "checklist[0].verify: verify by ci needs a list of checks" in found
    assert "checklist[1].colour: unknown key (check the spelling)" in found
    assert len(found) == 6


def test_names_must_point_at_something_defined() -> None:
    text = """
version: 1
roles: {rm: [U0RM1]}
tiers: [free]
permissions: {wave.promote: [admins]}
sources: {demo: {type: demo}}
metrics:
  - {id: ok, source: demo, success: "> 0"}
  - {id: ok, source: nowhere, success: "> 0"}
plans:
  default:
    - {name: w, tiers: [pro], percent: 10, observe: 1h, approvers: [cab], metrics: [nope]}
    - {name: w, tiers: [free], percent: 100, observe: 1h}
"""
    assert set(problems(text)) == {
        "metrics[1].id: duplicate id 'ok'",
        "permissions.wave.promote[0]: unknown role 'admins'",
        "plans.default[0].tiers[0]: unknown tier 'pro'",
        "plans.default[0].approvers[0]: unknown role 'cab'",
        "plans.default[0].metrics[0]: unknown metric 'nope'",
        "plans.default[1].name: duplicate wave 'w'",
        "metrics[1].source: unknown source 'nowhere'",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "a policy file is a YAML mapping starting with `version: 1`"),
        ("- a\n- b\n", "a policy file is a YAML mapping starting with `version: 1`"),
        ("version: 2\n", "version: Input should be 1"),
        ("tiers: [a]\n", "version: required"),
    ],
)
def test_wrong_shapes_are_explained(text: str, expected: str) -> None:
    assert problems(text)[0] == expected


def test_broken_yaml_names_the_line() -> None:
    (problem,) = problems("version: 1\nchannels: {rollouts: [\n")
    assert problem.startswith("line ")
    assert "not valid YAML" in problem


def test_every_section_but_version_is_optional() -> None:
    policy = parse_policy("version: 1\n")
    assert policy.checklist == []
    assert policy.plans == {}
    assert policy.roles_for("wave.promote") == ["release-managers"]
    assert policy.reminders[1] == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("3d", 259200), ("1s", 1), ("1.5h", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["2x", "0s", "-5m", "h", "", "5", "1 fortnight"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        (">= 0.97", 0.97, True),
        (">= 0.97", 0.969, False),
        ("< 2500", 2500, False),
        ("== 0", 0, True),
        ("!= 0", 0, False),
        ("between 0.9 1.0", 1.0, True),
        ("between 0.9 1.0", 0.89, False),
        ("> 1e3", 1001, True),
        ("> 0", float("nan"), False),
    ],
)
def test_conditions(text: str, value: float, holds: bool) -> None:
    assert parse_condition(text).holds(value) is holds


@pytest.mark.parametrize("text", ["=> 1", "between 2 1", ">= ", "0.97", "> 1 and < 2"])
def test_bad_conditions_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid condition"):
        parse_condition(text)


@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(text: str) -> None:
    refused: PolicyInvalid | None = None
    try:
        parse_policy(text)
    except PolicyInvalid as exc:
        refused = exc
    if refused is not None:
        assert refused.problems
        assert all(str(p) for p in refused.problems)


def test_missing_file_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        load_policy(tmp_path / "absent.yml")
    (problem,) = caught.value.problems
    assert "cannot read" in str(problem)
