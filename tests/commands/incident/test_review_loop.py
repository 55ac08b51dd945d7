"""The review that says what to change, on a seeded month: over signed HTTP (`/incident review`)
and as JSON (`GET /api/v1/review`); the expected figures are computed here from the seeded rows."""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from commands.policy import Policy
from storage.incident_loop import FollowUp, FollowUpState, ProofResult
from storage.models import (
    AuditEvent,
    Incident,
    IncidentStatus,
    Measurement,
    Release,
    ReleaseState,
    Rollout,
    RolloutState,
)
from tests.conftest import COMMANDER, MANAGER, Service
from tests.support.clock import FakeClock
from tests.support.incidents import FakeSlackWithHistory
from tests.support.loop import api, http_proof, loop_policy, say

NOV = datetime(2026, 11, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
CHANGE = (
    "provider-outage: 3 times, rollouts were paused by hand each time → add `pause_rollouts` "
    "to `incidents.provider-outage.automations`"
)
# version → (created, completed or None, final state, completion success values, cost values)
RELEASES = {
    "2026.11.03-1": (
        NOV + timedelta(days=2, hours=8),
        NOV + timedelta(days=4, hours=12),
        ReleaseState.complete,
        [0.98, 0.96, 0.99],
        [0.10, 0.12],
    ),
    "2026.11.08-1": (
        NOV + timedelta(days=7),
        None,
        ReleaseState.rolled_back,
        [0.90, 0.93],
        [0.15],
    ),
}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackWithHistory]:
    found = await FakeSlackWithHistory().start()
    yield found
    await found.stop()


@pytest.fixture
def policy() -> Policy:
    base = loop_policy()
    classes = dict(base.incidents)
    classes["provider-outage"] = classes["provider-outage"].model_copy(update={"automations": []})
    proof = http_proof("http://127.0.0.1:9/health")
    return base.model_copy(update={"incidents": classes, "proofs": [proof]})


def incident(declared: datetime, mitigate: int, resolve: int) -> Incident:
    return Incident(
        incident_class="provider-outage",
        severity=2,
        summary=f"provider down {declared:%d}",
        channel=f"C0PO{declared:%m%d}",
        declared_by=COMMANDER,
        declared_at=declared,
        last_update_at=declared,
        mitigated_at=declared + mitigate * MIN,
        resolved_at=declared + resolve * MIN,
        status=IncidentStatus.resolved,
    )


def event(at: datetime, action: str, subject: str, actor: str, detail: str = "") -> AuditEvent:
    return AuditEvent(
        at=at, actor=actor, action=action, subject=subject, outcome="ok", detail=detail
    )


def seed(session: Session) -> list[AuditEvent]:
    november = [
        incident(NOV + timedelta(days=1, hours=10), 10, 60),
        incident(NOV + timedelta(days=8, hours=10), 30, 90),
        incident(NOV + timedelta(days=19, hours=10), 20, 120),
    ]
    session.add_all([*november, incident(datetime(2026, 10, 15, tzinfo=UTC), 40, 100)])
    session.flush()
    events = [
        # Each November outage: a release manager paused the rollout by hand.
        event(
            i.declared_at + 5 * MIN,
            "wave.pause",
            "release:2026.11.08-1",
            MANAGER,
            "manual at staging",
        )
        for i in november
    ]
    events += [
        event(
            NOV + timedelta(days=3),
            "wave.pause",
            "release:2026.11.03-1",
            "wavegate",
            "failed at internal",
        ),
        event(NOV + timedelta(days=3, hours=2), "wave.resume", "release:2026.11.03-1", MANAGER),
        event(NOV + timedelta(days=20), "rollback", "release:2026.11.08-1", MANAGER),
    ]
    session.add_all(events)
    for version, (created, completed, state, quality, cost) in RELEASES.items():
        release = Release(
            version=version,
            state=state,
            created_by=MANAGER,
            created_at=created,
            completed_at=completed,
        )
        session.add(release)
        session.flush()
        assert release.id is not None
        rollout = Rollout(
            release_id=release.id,
            plan="default",
            wave_started_at=created,
            started_by=MANAGER,
            started_at=created,
            state=RolloutState.complete if completed else RolloutState.rolled_back,
            finished_at=completed or NOV + timedelta(days=20),
        )
        session.add(rollout)
        session.flush()
        assert rollout.id is not None
        rows = [("completion_success_rate", v) for v in quality]
        rows += [("provider_cost_per_generation", v) for v in cost]
        for n, (metric, value) in enumerate(rows):
            session.add(
                Measurement(
                    rollout_id=rollout.id,
                    wave_index=0,
                    metric=metric,
                    phase="successful",
                    value=value,
                    taken_at=created + n * MIN,
                )
            )
        # A poll that errored carries no value and counts for nothing.
        session.add(
            Measurement(
                rollout_id=rollout.id,
                wave_index=0,
                metric="completion_success_rate",
                phase="error",
                value=None,
                taken_at=created + 30 * MIN,
            )
        )
    first, second = november[0].id, november[1].id
    assert first is not None
    assert second is not None
    session.add_all(
        [
            FollowUp(
                incident_id=first,
                text="Alert on provider p95",
                created_by=COMMANDER,
                created_at=NOV,
                state=FollowUpState.done,
            ),
            FollowUp(
                incident_id=first,
                text="Second provider contract",
                created_by=COMMANDER,
                created_at=NOV,
            ),
            FollowUp(
                incident_id=second,
                text="Chaos test the failover",
                created_by=COMMANDER,
                created_at=NOV,
                due=datetime(2026, 11, 25, tzinfo=UTC),
            ),
        ]
    )
    # The backup route's proof last failed on the last evening of the month.
    session.add(
        ProofResult(
            proof="backup-route",
            ok=False,
            detail="GET answered 503",
            checked_at=datetime(2026, 11, 30, 21, 0, tzinfo=UTC),
        )
    )
    session.commit()
    return events


def expected_releases(events: list[AuditEvent]) -> list[dict[str, object]]:
    """Each release's figures from the seeded rows: means of the valid polls, created →
    complete, and its pauses, resumes and rollbacks before completion."""
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    found = []
    for version, (created, completed, state, quality, cost) in RELEASES.items():
        until = completed or now
        loops = [
            e
            for e in events
            if e.subject == f"release:{version}"
            and e.action in {"wave.pause", "wave.resume", "rollback"}
            and created <= e.at <= until
        ]
        found.append(
            {
                "version": version,
                "state": str(state),
                "completion_success": statistics.fmean(quality),
                "time_to_deployable_s": (completed - created).total_seconds()
                if completed
                else None,
                "fix_loops": len(loops),
                "cost_per_generation": statistics.fmean(cost),
            }
        )
    return found


async def test_the_review_names_the_policy_change_and_the_release_figures(
    service: Service, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with Session(service.runtime.engine, expire_on_commit=False) as session:
        events = seed(session)
    response = await api(service, "GET", "/api/v1/review?month=2026-11")
    assert response.status == 200
    review = await response.json()
    (outage,) = review["classes"]
    assert outage == {
        "class": "provider-outage",
        "count": 3,
        "previous_count": 1,
        "median_to_mitigate_s": 20 * 60.0,
        "p90_to_mitigate_s": 30 * 60.0,
        "median_to_resolve_s": 90 * 60.0,
        "p90_to_resolve_s": 120 * 60.0,
        "previous_median_to_mitigate_s": 40 * 60.0,
        "previous_median_to_resolve_s": 100 * 60.0,
        "mitigate_trend": "↓",
        "resolve_trend": "↓",
        "automated": False,
        "incidents": [1, 2, 3],
    }
    assert [c["text"] for c in review["policy_changes"]] == [CHANGE]
    assert review["followups"] == {"total": 3, "done": 1, "waived": 0, "open": 2, "overdue": 1}
    assert review["pauses_by_cause"] == {"manual": 3, "failed": 1, "rolled back": 1}
    assert review["releases"] == expected_releases(events)
    assert review["retire"]["classes never declared in 6 months"] == [
        "sandbox-instability",
        "migration-regression",
        "auth-policy-failure",
    ]

    reply = await say(service, "/incident", "review 2026-11")
    text = reply["text"]
    assert text.startswith("Incident review 2026-11: 3 incidents (2026-10: 1)")
    assert "1. provider-outage · 3 (was 1) · 20m / 30m ↓ · 1h 30m / 2h ↓ · #1" in text
    assert f"• {CHANGE}" in text
    assert "Follow-ups: 1 of 3 closed (1 done, 0 waived), 2 open, 1 overdue" in text
    assert "Rollouts paused or rolled back, by cause: manual 3, failed 1, rolled back 1" in text
    first, second = expected_releases(events)
    assert (
        f"• 2026.11.03-1 · complete · {first['completion_success']:.3f} · 2d 4h · "
        f"{first['fix_loops']} · {first['cost_per_generation']:.4f}"
    ) in text
    assert (
        f"• 2026.11.08-1 · rolled back · {second['completion_success']:.3f} · — · "
        f"{second['fix_loops']} · {second['cost_per_generation']:.4f}"
    ) in text
    assert (
        "Proofs of the first-response paths: ❌ Backup provider route: FAILED 12h ago — GET "
        "answered 503 (owner <@U0SRE1>)"
    ) in text
    bad = await api(service, "GET", "/api/v1/review?month=2026-13")
    assert bad.status == 400
    assert "invalid month '2026-13'" in (await bad.json())["error"]
    print(text)
