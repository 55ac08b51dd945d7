"""The policy file's incident sections: follow-ups, proofs, paging, stakeholders, archiving,
and how Alertmanager's severity labels read."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from commands.values import ConditionField, Duration, Identifier, SeverityKey, SlackMember, Strict


class FollowUps(Strict):
    """Open follow-ups of resolved incidents become checklist items of the next release."""

    gate: bool = False
    # The incident classes whose follow-ups gate; empty: every class.
    classes: list[Identifier] = []

    def gates(self, incident_class: str) -> bool:
        return self.gate and (not self.classes or incident_class in self.classes)


class Proof(Strict):
    """A scheduled check that a first-response path still works when an incident needs it."""

    id: Identifier
    title: str
    # http: GET `url` answers `expect_status`; metric: `query` on `source` meets `success`;
    # verify: the actuator's `verify` of the last known-good release is confirmed;
    # rollback_age: the newest passed `evidence_item` (migration-rollback) is younger than max_age.
    kind: Literal["http", "metric", "verify", "rollback_age"]
    # The incident classes whose first response relies on this path (shown in their guidance).
    classes: list[Identifier] = []
    owner: SlackMember
    interval: Duration = timedelta(hours=1)
    timeout: Duration = timedelta(seconds=10)
    # A failing proof blocks wave starts and promotions like an open sev2 (override: --force).
    blocks_rollouts: bool = False
    url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    expect_status: Annotated[int, Field(ge=100, le=599)] = 200
    source: Identifier | None = None
    query: str = ""
    success: ConditionField | None = None
    evidence_item: Identifier = "migration-rollback"
    max_age: Duration | None = None

    @model_validator(mode="after")
    def _fits_its_kind(self) -> Proof:
        if self.kind == "http" and self.url is None:
            raise ValueError("an http proof needs a url")
        if self.kind == "metric" and (not self.source or not self.query or not self.success):
            raise ValueError("a metric proof needs a source, a query and a success condition")
        if self.kind == "rollback_age" and self.max_age is None:
            raise ValueError("a rollback_age proof needs max_age")
        return self


class Paging(Strict):
    """Page through a webhook in PagerDuty Events API v2 shape: trigger, then resolve."""

    url: Annotated[str, Field(pattern=r"^https?://")]
    routing_key_env: str = "WAVEGATE_PAGING_ROUTING_KEY"
    # Page for these classes, and for every incident of severity max_severity or worse.
    classes: list[Identifier] = []
    max_severity: Annotated[int, Field(ge=0, le=4)] = 2
    timeout: Duration = timedelta(seconds=10)

    def pages(self, incident_class: str, severity: int) -> bool:
        return incident_class in self.classes or severity <= self.max_severity


class Stakeholders(Strict):
    """Where `/incident stakeholders TEXT` posts, in a fixed plain format."""

    channel: str


class Archive(Strict):
    """An incident channel is archived this long after resolve, with a last message linking the
    postmortem."""

    after: Duration


def _default_severity_map() -> dict[str, int]:
    return {"critical": 1, "page": 1, "error": 2, "high": 2, "warning": 3, "warn": 3, "info": 4}


class Alerts(Strict):
    """How Alertmanager's labels read (DESIGN §9)."""

    # A `severity` label's value (lower case) → sev1 to sev4; numbers and `sevN` always work.
    severity_map: dict[str, SeverityKey] = Field(default_factory=_default_severity_map)
