"""Follow-ups end to end over signed HTTP with the fake Slack: added by command and by the
message shortcut, gating the next release's start until done, listed, waived with permission."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlmodel import Session, select

from commands.policy import Policy
from storage.incident_loop import FollowUp, FollowUpState
from storage.models import AuditEvent
from tests.conftest import COMMANDER, DEVELOPER, MANAGER, Service
from tests.support.incidents import FakeSlackWithHistory
from tests.support.loop import api, fake, loop_policy, message_shortcut, say
from tests.support.signing import interaction_body

CHANNEL = "C0INC0001"
RELEASE = "2026.11.28-1"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackWithHistory]:
    found = await FakeSlackWithHistory().start()
    yield found
    await found.stop()


@pytest.fixture
def policy() -> Policy:
    return loop_policy()


async def declare_and_resolve_with_followup(service: Service) -> None:
    declared = await say(
        service,
        "/incident",
        "declare provider-outage Primary model provider times out",
        user=DEVELOPER,
    )
    assert declared["text"].startswith("Declared incident #1 (sev2 provider-outage)")
    added = await say(
        service,
        "/incident",
        f"followup Add a circuit breaker <@{DEVELOPER}|dev> due 2026-12-05",
        user=DEVELOPER,
        channel=CHANNEL,
    )
    assert added["text"] == (
        f"Follow-up 1 added to #1: Add a circuit breaker · owner <@{DEVELOPER}> · due 2026-12-05."
        " It gates the next release once the incident is resolved."
    )
    resolved = await say(
        service, "/incident", "resolve failed over", user=COMMANDER, channel=CHANNEL
    )
    assert "is resolved" in resolved["text"]


async def test_a_followup_blocks_the_next_release_start_until_done(service: Service) -> None:
    await declare_and_resolve_with_followup(service)
    created = await api(service, "POST", "/api/v1/releases", json={"version": RELEASE})
    assert created.status == 201

    refused = await say(service, "/wave", f"start {RELEASE}")
    assert (
        "the readiness checklist of 2026.11.28-1 is incomplete: followup-1 (pending)"
        in (refused["text"])
    )
    shown = await say(service, "/ready", RELEASE)
    assert (
        "*followup-1* — Follow-up 1 of incident #1 (provider-outage): Add a circuit breaker"
        in (shown["text"])
    )
    assert "close it with `/incident followup done 1`" in shown["text"]

    listed = await say(service, "/incident", "followups")
    assert listed["text"].splitlines()[1] == (
        f"1. #1 provider-outage: Add a circuit breaker · owner <@{DEVELOPER}> · due 2026-12-05"
    )
    done = await say(service, "/incident", "followup done 1", user=DEVELOPER)
    assert done["text"].startswith("Follow-up 1 is done")

    started = await say(service, "/wave", f"start {RELEASE}")
    assert started["text"].startswith(f"Started {RELEASE}"), started["text"]
    again = await say(service, "/incident", "followup done 1", user=DEVELOPER)
    assert "Conflict: follow-up 1 is done already" in again["text"]


async def test_waiving_needs_the_permission_and_a_reason(service: Service) -> None:
    await declare_and_resolve_with_followup(service)
    refused = await say(service, "/incident", "followup waive 1 not worth it", user=DEVELOPER)
    assert refused["text"].startswith("Not allowed")
    no_reason = await say(service, "/incident", "followup waive 1", user=COMMANDER)
    assert "say why the follow-up is waived" in no_reason["text"]
    waived = await say(
        service, "/incident", "followup waive 1 covered by ticket OPS-7", user=COMMANDER
    )
    assert waived["text"].startswith("Follow-up 1 is waived")
    with Session(service.runtime.engine) as session:
        row = session.get(FollowUp, 1)
        assert row is not None
        assert (row.state, row.reason, row.closed_by) == (
            FollowUpState.waived,
            "covered by ticket OPS-7",
            COMMANDER,
        )
        actions = [e.action for e in session.exec(select(AuditEvent))]
    assert "incident.followup.waive.waived" in actions
    bad_date = await say(service, "/incident", "followup #1 Fix it due 2026-13-40", user=MANAGER)
    assert "invalid date '2026-13-40'; use YYYY-MM-DD" in bad_date["text"]


async def test_the_message_shortcut_adds_a_followup_once(service: Service) -> None:
    await say(
        service,
        "/incident",
        "declare provider-outage Primary model provider times out",
        user=DEVELOPER,
    )
    payload = message_shortcut(
        user_id=COMMANDER,
        channel_id=CHANNEL,
        ts="1700000100.000200",
        text="We should alert on <provider> p95 & retries",
        response_url=fake(service).response_url("sc"),
    )
    response = await service.post_signed(interaction_body(payload))
    assert response.status == 200
    await fake(service).wait_for(lambda: len(fake(service).responses_to("sc")) >= 1)
    (reply,) = fake(service).responses_to("sc")
    assert reply["text"].startswith(
        f"Follow-up 1 added to #1: We should alert on &lt;provider&gt; p95 &amp; retries · owner "
        f"<@{COMMANDER}>"
    )
    await service.post_signed(interaction_body(payload))
    await fake(service).wait_for(lambda: len(fake(service).responses_to("sc")) >= 2)
    assert "is follow-up 1 of #1 already" in fake(service).responses_to("sc")[1]["text"]
    elsewhere = message_shortcut(
        user_id=COMMANDER,
        channel_id="C0WORK",
        ts="1.2",
        text="x",
        response_url=fake(service).response_url("sc2"),
    )
    await service.post_signed(interaction_body(elsewhere))
    await fake(service).wait_for(lambda: len(fake(service).responses_to("sc2")) >= 1)
    assert (
        "works on messages in an incident's channel"
        in (fake(service).responses_to("sc2")[0]["text"])
    )
    with Session(service.runtime.engine) as session:
        assert len(list(session.exec(select(FollowUp)))) == 1
