"""The postmortem draft of a seeded incident, uploaded with files.uploadV2 and served by the
API; the channel archived after the policy's delay; roles and stakeholder updates."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import Session

from bot.http.keys import LISTENERS
from bot.jobs.incidents import archive_resolved
from commands.policy import Policy
from commands.policy_incidents import Archive
from storage.measurements import add_measurement
from tests.conftest import COMMANDER, DEVELOPER, Service
from tests.support.clock import FakeClock
from tests.support.incidents import FakeSlackWithHistory, running_rollout
from tests.support.loop import STAKEHOLDERS, api, fake, loop_policy, posts_to, say
from tests.support.signing import block_action, interaction_body

CHANNEL = "C0INC0001"
SUMMARY = "Schema migration 0042 breaks writes"
VERSION = "2026.11.27-1"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackWithHistory]:
    found = await FakeSlackWithHistory().start()
    yield found
    await found.stop()


@pytest.fixture
def policy() -> Policy:
    return loop_policy(archive=Archive(after=timedelta(hours=2)))


async def seed_incident(service: Service, clock: FakeClock) -> None:
    """10:00 declared (the rollout paused by automation) · 10:10 status · 10:12 step 1 ticked ·
    10:25 mitigated · 10:30 follow-up · 11:00 resolved; completion success polled around it."""
    start = clock()
    with Session(service.runtime.engine, expire_on_commit=False) as session:
        rollout = running_rollout(session, VERSION, at=start - timedelta(hours=2))
        assert rollout.id is not None
        for minutes, value in [(-30, 0.98), (5, 0.81), (20, 0.95)]:
            add_measurement(
                rollout_id=rollout.id,
                wave_index=0,
                metric="completion_success_rate",
                phase="successful" if value >= 0.97 else "failed",
                value=value,
                detail="",
                at=start + timedelta(minutes=minutes),
                session=session,
            )
        session.commit()
    await say(service, "/incident", f"declare migration-regression {SUMMARY}", user=DEVELOPER)
    clock.advance(minutes=10)
    await say(
        service,
        "/incident",
        "status writes fail on the orders table",
        user=DEVELOPER,
        channel=CHANNEL,
    )
    clock.advance(minutes=2)
    tick = block_action(
        "incident.step.tick.1",
        json.dumps({"incident": 1, "step": 1}),
        user_id=COMMANDER,
        channel_id=CHANNEL,
        response_url=fake(service).response_url("tick"),
    )
    assert (await service.post_signed(interaction_body(tick))).status == 200
    # The tick is answered by redrawing the guidance (no reply): wait for the work itself.
    assert await service.app[LISTENERS].drain(5) == 0
    clock.advance(minutes=13)
    await say(service, "/incident", "mitigated", user=COMMANDER, channel=CHANNEL)
    clock.advance(minutes=5)
    await say(
        service,
        "/incident",
        f"followup Test the down migration <@{DEVELOPER}>",
        user=COMMANDER,
        channel=CHANNEL,
    )
    clock.advance(minutes=30)
    await say(service, "/incident", "resolve restored schema 0041", user=COMMANDER, channel=CHANNEL)


async def test_the_postmortem_has_every_section_with_the_seeded_times(
    service: Service, clock: FakeClock
) -> None:
    await seed_incident(service, clock)
    clock.advance(minutes=5)
    reply = await say(service, "/incident", "postmortem #1", user=COMMANDER)
    assert reply["text"].startswith(f"Uploaded the postmortem draft of #1 to <#{CHANNEL}|")
    (upload,) = fake(service).uploaded()
    assert upload["channel"] == CHANNEL
    assert upload["title"] == "Postmortem draft: incident #1"
    document = upload["content"]
    for section in (
        f"# Postmortem draft: incident #1 — {SUMMARY}",
        "## Summary",
        "## Class and severity",
        "## Impact window",
        "## Timeline",
        "## Rollouts paused or rolled back",
        "## First response",
        "## Follow-ups",
    ):
        assert section in document, section
    assert "Migration regression (`migration-regression`), sev2" in document
    assert "- Declared: 2026-11-27 10:00 UTC" in document
    assert "- Mitigated: 2026-11-27 10:25 UTC (+25m)" in document
    assert "- Resolved: 2026-11-27 11:00 UTC (+1h)" in document
    assert (
        "| 2026-11-27 10:10 UTC | status | U0DEV1 | writes fail on the orders table |" in document
    )
    assert (
        "| 2026-11-27 11:00 UTC | resolved | U0IC1 | Resolved: restored schema 0041 |" in document
    )
    assert f"- Paused: {VERSION} (now paused)" in document
    assert (
        f"- {VERSION} · `completion_success_rate`: first 0.98 at 2026-11-27 09:30 UTC, min 0.81, "
        "max 0.98, last 0.95 at 2026-11-27 10:20 UTC (3 polls)"
    ) in document
    assert "- [x] 1. Pause every active rollout — done by U0IC1 at 2026-11-27 10:12 UTC" in document
    assert "- [ ] 2. Identify the last known-good schema version — not ticked" in document
    assert "- [ ] 1. Test the down migration · owner @U0DEV1" in document
    assert (
        "| 2026-11-27 10:30 UTC | followup | U0IC1 | Follow-up 1: Test the down migration "
        "(owner @U0DEV1) |" in document
    )
    # The API serves the same draft as Markdown.
    served = await api(service, "GET", "/api/v1/incidents/1/postmortem")
    assert served.status == 200
    assert served.content_type == "text/markdown"
    assert await served.text() == document
    missing = await api(service, "GET", "/api/v1/incidents/9/postmortem")
    assert missing.status == 404
    assert await missing.json() == {"error": "no incident #9"}
    print(document)


async def test_the_channel_is_archived_after_the_delay_with_a_last_message(
    service: Service, clock: FakeClock
) -> None:
    await seed_incident(service, clock)
    await service.delivery.deliver_due()
    assert await archive_resolved(service.runtime) == 0  # not yet: 2h after resolve
    clock.advance(hours=2)
    assert await archive_resolved(service.runtime) == 0  # uploaded; the last message is queued
    assert fake(service).calls_to("conversations.archive") == []
    (upload,) = fake(service).uploaded()
    await service.delivery.deliver_due()
    last = posts_to(service, CHANNEL)[-1]
    assert last["text"].startswith("🗄️ Incident #1 is resolved; this channel is being archived.")
    assert (
        "<https://wavegate-test.slack.com/files/U0BOT/F0FILE0001|postmortem draft>"
        in (last["text"])
    )
    assert await archive_resolved(service.runtime) == 1
    (archive,) = fake(service).calls_to("conversations.archive")
    assert archive.args["channel"] == CHANNEL
    assert await archive_resolved(service.runtime) == 0
    assert len(fake(service).uploaded()) == 1
    assert upload["content"].startswith("# Postmortem draft: incident #1")


async def test_comms_role_and_a_stakeholder_update_in_a_fixed_format(
    service: Service, clock: FakeClock
) -> None:
    await say(service, "/incident", f"declare migration-regression {SUMMARY}", user=DEVELOPER)
    refused = await say(
        service, "/incident", f"role comms <@{DEVELOPER}>", user=DEVELOPER, channel=CHANNEL
    )
    assert refused["text"].startswith("Not allowed")
    named = await say(
        service, "/incident", "role comms <@U0COMMS|pat>", user=COMMANDER, channel=CHANNEL
    )
    assert named["text"] == "<@U0COMMS> is the communications lead of #1."
    invites = fake(service).calls_to("conversations.invite")
    assert invites[-1].args == {"channel": CHANNEL, "users": "U0COMMS", "force": "1"}
    posted = await say(
        service,
        "/incident",
        "stakeholders Writes <b>fail</b> @here; ETA 30m",
        user="U0COMMS",
        channel=CHANNEL,
    )
    assert posted["text"] == f"Stakeholder update on #1 posted to <#{STAKEHOLDERS}>."
    await service.delivery.deliver_due()
    (update,) = posts_to(service, STAKEHOLDERS)
    assert update["text"] == "\n".join(
        [
            "Incident update — #1 Migration regression (sev2)",
            "Status: declared",
            f"Impact: {SUMMARY}",
            "Update: Writes &lt;b&gt;fail&lt;/b&gt; @here; ETA 30m",
            "Declared: 2026-11-27 10:00 UTC",
            "Next update: from the communications lead",
        ]
    )
