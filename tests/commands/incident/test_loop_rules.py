"""Improvement-loop rules on SQLite: follow-up words, reminders, proof kinds and their policy
validation, paging's choice of incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from commands.analysis.measure import Reading
from commands.core import Context, UsageError
from commands.incident import proofs
from commands.incident.followups import parse_followup, remind_due_followups
from commands.policy import Metric
from commands.policy_file import PolicyInvalid, parse_policy
from commands.policy_incidents import Paging, Proof
from commands.ports import Ports
from storage.incident_loop import FollowUp
from storage.models import CheckResult, CheckStatus, Incident, IncidentStatus, OutboxPost, Release
from tests.support.clock import FakeClock

USAGE = "/incident followup [#ID] TEXT [@owner] [due YYYY-MM-DD]"
DEC5 = datetime(2026, 12, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("Add a breaker <@U0DEV1|dev> due 2026-12-05", ("Add a breaker", "U0DEV1", DEC5)),
        ("Add a breaker due 2026-12-05 <@U0DEV1>", ("Add a breaker", "U0DEV1", DEC5)),
        ("Add a breaker U0DEV1", ("Add a breaker", "U0DEV1", None)),
        ("Add a due date check", ("Add a due date check", None, None)),
    ],
)
def test_followup_words(words: str, expected: tuple[str, str | None, datetime | None]) -> None:
    assert parse_followup(words.split(), USAGE) == expected


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("<@U0DEV1> due 2026-12-05", "missing TEXT"),
        ("Fix it due 2026-02-30", "invalid date '2026-02-30'"),
        ("Fix it due tomorrow", "invalid date 'tomorrow'"),
    ],
)
def test_bad_followup_words_are_refused(words: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_followup(words.split(), USAGE)


def test_an_owner_is_reminded_once_when_the_followup_falls_due(
    ctx: Context, clock: FakeClock
) -> None:
    incident = Incident(
        incident_class="provider-outage",
        severity=2,
        summary="down",
        declared_by="U0IC1",
        declared_at=clock(),
        last_update_at=clock(),
        status=IncidentStatus.resolved,
    )
    ctx.session.add(incident)
    ctx.session.flush()
    assert incident.id is not None
    ctx.session.add(
        FollowUp(
            incident_id=incident.id,
            text="Chaos test",
            owner="U0DEV1",
            due=DEC5,
            created_by="U0IC1",
            created_at=clock(),
        )
    )
    ctx.session.commit()
    clock.now = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    assert remind_due_followups(ctx) == []
    clock.now = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    assert len(remind_due_followups(ctx)) == 1
    assert remind_due_followups(ctx) == []
    (post,) = ctx.session.exec(select(OutboxPost)).all()
    assert post.channel == "U0DEV1"
    assert post.text.startswith("⏰ Follow-up 1 of incident #1 is due: Chaos test")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "http"}, "an http proof needs a url"),
        ({"kind": "metric", "source": "prom", "query": "up"}, "needs a source, a query and a"),
        ({"kind": "rollback_age"}, "a rollback_age proof needs max_age"),
    ],
)
def test_a_proof_needs_what_its_kind_checks(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Proof.model_validate({"id": "p", "title": "P", "owner": "U0SRE1", **fields})


def test_a_proof_naming_an_unknown_source_fails_the_policy_check() -> None:
    text = """
version: 1
proofs:
  - {id: route, title: Route, kind: metric, source: nowhere, query: up, success: "> 0",
     owner: U0SRE1}
"""
    with pytest.raises(PolicyInvalid, match="unknown source 'nowhere'"):
        parse_policy(text)


async def test_rollback_age_reads_the_newest_passed_migration_rollback_evidence(
    ctx: Context, clock: FakeClock
) -> None:
    proof = Proof(
        id="rb",
        title="Rollback tested",
        kind="rollback_age",
        owner="U0SRE1",
        max_age=timedelta(days=30),
    )
    never = await proofs.check(proofs.plan(ctx, proof), Ports(), _no_probe, at=clock())
    assert never == (False, "no passed migration-rollback evidence")
    release = Release(version="1.0", created_by="U0RM1", created_at=clock())
    ctx.session.add(release)
    ctx.session.flush()
    assert release.id is not None
    ctx.session.add(
        CheckResult(
            release_id=release.id,
            item="migration-rollback",
            status=CheckStatus.passed,
            evidence="https://ci/run/7",
            actor="U0RM1",
            recorded_at=clock() - timedelta(days=40),
        )
    )
    ctx.session.commit()
    old = await proofs.check(proofs.plan(ctx, proof), Ports(), _no_probe, at=clock())
    assert old == (False, "the last tested rollback is 40d old, over 30d (https://ci/run/7)")
    clock.advance(days=-35)
    fresh = await proofs.check(proofs.plan(ctx, proof), Ports(), _no_probe, at=clock())
    assert fresh == (True, "last tested rollback 5d ago (https://ci/run/7)")


class StaticSource:
    """A metric source port answering one value (no network: the port's contract only)."""

    def __init__(self, value: float | None) -> None:
        self.value = value
        self.queries: list[str] = []

    async def read(self, query: str, *, metric: Metric) -> Reading:
        self.queries.append(query)
        return Reading(value=self.value)


async def _no_probe(url: str, status: int, limit: timedelta) -> tuple[bool, str]:
    raise AssertionError("no HTTP probe expected")


async def test_a_metric_proof_judges_the_value_by_its_condition(
    ctx: Context, clock: FakeClock
) -> None:
    proof = Proof.model_validate(
        {
            "id": "traffic",
            "title": "Backup serves",
            "kind": "metric",
            "source": "prom",
            "query": "sum(rate(backup_total[5m]))",
            "success": "> 0",
            "owner": "U0SRE1",
        }
    )
    up, down = StaticSource(4.0), StaticSource(0.0)
    plan = proofs.plan(ctx, proof)
    assert await proofs.check(plan, Ports(sources={"prom": up}), _no_probe, at=clock()) == (
        True,
        "4 (meets > 0)",
    )
    assert await proofs.check(plan, Ports(sources={"prom": down}), _no_probe, at=clock()) == (
        False,
        "0 (misses > 0)",
    )
    assert up.queries == ["sum(rate(backup_total[5m]))"]


def test_paging_pages_named_classes_and_severe_incidents() -> None:
    paging = Paging(url="http://127.0.0.1:1/enqueue", classes=["migration-regression"])
    assert paging.pages("migration-regression", 4)
    assert paging.pages("provider-outage", 2)
    assert not paging.pages("provider-outage", 3)
