"""Incidents end to end: signed Slack requests through Bolt, the fake Slack Web API on loopback
recording every call, the outbox delivered by hand."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.http.keys import LISTENERS
from storage.models import (
    AuditEvent,
    Incident,
    IncidentRollout,
    PauseKind,
    Rollout,
    RolloutState,
    TimelineEntry,
)
from tests.conftest import COMMANDER, DEVELOPER, INCIDENTS, MANAGER, Service
from tests.support.clock import FakeClock
from tests.support.incidents import (
    FakeSlackWithHistory,
    declare_form_submission,
    event_body,
    json_headers,
    running_rollout,
)
from tests.support.signing import block_action, interaction_body

SUMMARY = "Schema migration 0042 breaks writes"
CHANNEL_NAME = "inc-20261127-1-schema-migration-0042-breaks-writes"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackWithHistory]:
    """Overrides conftest's: the `service` fixture here talks to this richer fake."""
    fake = await FakeSlackWithHistory().start()
    yield fake
    await fake.stop()


def fake(service: Service) -> FakeSlackWithHistory:
    assert isinstance(service.slack, FakeSlackWithHistory)
    return service.slack


async def command(service: Service, text: str, **kwargs: Any) -> dict[str, Any]:
    """Run `/incident TEXT`; the reply in the ack, or the one sent after it."""
    before = len(fake(service).responses_to())
    response = await service.command("/incident", text, **kwargs)
    assert response.status == 200
    if response.content_type == "application/json":
        return dict(await response.json())
    return await fake(service).reply(before + 1)


def incidents(service: Service) -> list[Incident]:
    with Session(service.runtime.engine) as session:
        return list(session.exec(select(Incident).order_by(col(Incident.id))))


def timeline(service: Service, incident_id: int = 1) -> list[tuple[str, str, str]]:
    with Session(service.runtime.engine) as session:
        query = (
            select(TimelineEntry)
            .where(TimelineEntry.incident_id == incident_id)
            .order_by(col(TimelineEntry.id))
        )
        return [(e.kind, e.actor, e.text) for e in session.exec(query)]


def rollout_state(service: Service, rollout_id: int) -> Rollout:
    with Session(service.runtime.engine) as session:
        found = session.get(Rollout, rollout_id)
        assert found is not None
        return found


def posts_to(service: Service, channel: str) -> list[dict[str, Any]]:
    return [post for post in service.slack.posts() if post["channel"] == channel]


def buttons(post: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for block in post.get("blocks") or []:
        if block.get("accessory", {}).get("type") == "button":
            found.append(block["accessory"])
        found += [e for e in block.get("elements", []) if e.get("type") == "button"]
    return found


async def declare_with_running_rollout(service: Service, clock: FakeClock) -> int:
    with Session(service.runtime.engine, expire_on_commit=False) as session:
        rollout = running_rollout(session, "2026.11.27-1", at=clock())
    assert rollout.id is not None
    reply = await command(service, f"declare migration-regression {SUMMARY}", user=DEVELOPER)
    assert reply["text"].startswith("Declared incident #1 (sev2 migration-regression)")
    await service.delivery.deliver_due()
    return rollout.id


async def test_declare_makes_exactly_these_slack_calls(service: Service, clock: FakeClock) -> None:
    await declare_with_running_rollout(service, clock)
    slack = fake(service)
    incident_channel = "C0INC0001"
    setup = [c for c in slack.calls if c.method.startswith("conversations.")]
    assert [(c.method, c.args) for c in setup] == [
        ("conversations.create", {"name": CHANNEL_NAME, "is_private": "0"}),
        (
            "conversations.invite",
            {"channel": incident_channel, "users": f"{DEVELOPER},{COMMANDER}", "force": "1"},
        ),
        (
            "conversations.setTopic",
            {
                "channel": incident_channel,
                "topic": f"Sev2 Migration regression · declared · lead <@{DEVELOPER}> · {SUMMARY}",
            },
        ),
    ]
    # The channel exists before anything is posted in it.
    assert slack.methods().index("conversations.setTopic") < slack.methods().index(
        "chat.postMessage"
    )
    guidance, paused, rollback = posts_to(service, incident_channel)
    assert "First action:* Stop the rollout and restore the last known-good" in guidance["text"]
    assert [b["action_id"] for b in buttons(guidance)] == [
        f"incident.step.tick.{n}" for n in (1, 2, 3, 4)
    ]
    assert json.loads(buttons(guidance)[1]["value"]) == {"incident": 1, "step": 2}
    assert paused["text"].startswith("Paused 1 running rollout: 2026.11.27-1.")
    (offer,) = buttons(rollback)
    assert offer["action_id"] == "wave.rollback.request"
    assert json.loads(offer["value"])["release"] == "2026.11.27-1"
    (announcement,) = posts_to(service, INCIDENTS)
    assert f"join <#{incident_channel}|{CHANNEL_NAME}>" in announcement["text"]
    assert f"declared by <@{DEVELOPER}>: {SUMMARY}" in announcement["text"]


async def test_migration_regression_pauses_the_running_rollout_as_incident(
    service: Service, clock: FakeClock
) -> None:
    rollout_id = await declare_with_running_rollout(service, clock)
    rollout = rollout_state(service, rollout_id)
    assert rollout.state == RolloutState.paused
    assert rollout.pause_kind == PauseKind.incident
    assert rollout.paused_reason is not None
    assert rollout.paused_reason.startswith("incident #1 (migration-regression)")
    with Session(service.runtime.engine) as session:
        links = session.exec(select(IncidentRollout)).all()
        actions = [e.action for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.id)))]
    assert [(link.incident_id, link.rollout_id) for link in links] == [(1, rollout_id)]
    assert "incident.declare" in actions
    assert "wave.pause" in actions
    assert [kind for kind, _, _ in timeline(service)] == ["declared", "automation", "automation"]


async def test_a_clashing_channel_name_gets_a_suffix(service: Service) -> None:
    fake(service).channel_names["C0TAKEN"] = "inc-20261127-1-db-down"
    await command(service, "declare provider-outage db down")
    (incident,) = incidents(service)
    assert incident.channel_name == "inc-20261127-1-db-down-2"
    created = [c.args["name"] for c in fake(service).calls_to("conversations.create")]
    assert created == ["inc-20261127-1-db-down", "inc-20261127-1-db-down-2"]


async def test_declare_with_no_words_opens_the_form(service: Service) -> None:
    reply = await command(service, "declare")
    assert reply["text"] == "Fill in the form to declare the incident."
    (opened,) = fake(service).calls_to("views.open")
    assert opened.args["trigger_id"] == "1337.42.abcd"
    view = json.loads(opened.args["view"]) if isinstance(opened.args["view"], str) else None
    view = view or opened.args["view"]
    assert view["callback_id"] == "incident.declare"
    # No rollout is active: there is no release to select, so no release field.
    assert [b["block_id"] for b in view["blocks"]] == ["class", "severity", "summary"]
    assert incidents(service) == []


async def test_unknown_class_lists_the_classes_opens_the_form_and_changes_nothing(
    service: Service,
) -> None:
    reply = await command(service, "declare db-fire everything is on fire")
    assert reply["response_type"] == "ephemeral"
    assert "unknown incident class 'db-fire'" in reply["text"]
    assert "migration-regression (sev2)" in reply["text"]
    assert "Usage: `/incident declare [CLASS] [SEV] SUMMARY`" in reply["text"]
    (opened,) = fake(service).calls_to("views.open")
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["blocks"][2]["element"]["initial_value"] == "db-fire everything is on fire"
    assert incidents(service) == []
    assert fake(service).calls_to("conversations.create") == []


async def test_bad_severity_is_refused_without_a_form(service: Service) -> None:
    reply = await command(service, "declare provider-outage sev7 upstream down")
    assert "invalid severity 'sev7'" in reply["text"]
    assert "Usage:" in reply["text"]
    assert fake(service).calls_to("views.open") == []
    assert incidents(service) == []


async def test_submitting_the_form_declares_and_tells_the_declarer(service: Service) -> None:
    body = interaction_body(
        declare_form_submission(
            user_id=DEVELOPER,
            incident_class="provider-outage",
            severity="1",
            summary="LLM provider returns 503",
        )
    )
    response = await service.post_signed(body)
    assert response.status == 200
    await fake(service).wait_for(
        lambda: any(p["channel"] == DEVELOPER for p in fake(service).posts())
    )
    (incident,) = incidents(service)
    assert (incident.incident_class, incident.severity) == ("provider-outage", 1)
    assert incident.summary == "LLM provider returns 503"
    (told,) = posts_to(service, DEVELOPER)
    assert told["text"] == f"Declared incident #1 in <#{incident.channel}>."


async def test_an_incomplete_form_shows_errors_and_declares_nothing(service: Service) -> None:
    body = interaction_body(
        declare_form_submission(
            user_id=DEVELOPER, incident_class=None, summary="  ", release="9.9.9"
        )
    )
    response = await service.post_signed(body)
    answer = await response.json()
    assert answer == {
        "response_action": "errors",
        "errors": {"class": "Pick a class", "summary": "Say what is broken"},
    }
    assert incidents(service) == []


async def test_ticking_a_step_is_a_timeline_entry_and_redraws_the_checklist(
    service: Service, clock: FakeClock
) -> None:
    await declare_with_running_rollout(service, clock)
    clock.advance(minutes=4)
    press = block_action(
        "incident.step.tick.2",
        json.dumps({"incident": 1, "step": 2}),
        user_id=COMMANDER,
        channel_id="C0INC0001",
        response_url=service.slack.response_url("tick"),
    )
    assert (await service.post_signed(interaction_body(press))).status == 200
    await service.app[LISTENERS].drain(5)  # the press is recorded after the ack
    assert timeline(service)[-1] == (
        "step",
        COMMANDER,
        "Step 2 done: Identify the last known-good schema version",
    )
    await service.delivery.deliver_due()
    (update,) = fake(service).calls_to("chat.update")
    assert (
        f"✅ 2. Identify the last known-good schema version — <@{COMMANDER}> at 10:04 UTC"
        in (update.args["text"])
    )
    assert [b["action_id"] for b in buttons(update.args)] == [
        "incident.step.tick.1",
        "incident.step.tick.3",
        "incident.step.tick.4",
    ]
    # A second press (a stale message) is refused, and says who ticked it.
    await service.post_signed(interaction_body(press))
    refused = await fake(service).reply(1, key="tick")
    assert f"step 2 was ticked already by <@{COMMANDER}> at 10:04 UTC" in refused["text"]
    assert [kind for kind, _, _ in timeline(service)].count("step") == 1


async def test_lifecycle_in_the_incident_channel_and_resume_offer(
    service: Service, clock: FakeClock
) -> None:
    rollout_id = await declare_with_running_rollout(service, clock)
    here = {"channel": "C0INC0001"}
    clock.advance(minutes=10)
    reply = await command(
        service, "status rolled the schema back on staging", user=DEVELOPER, **here
    )
    assert reply["text"] == "Update added to the timeline of #1."
    reply = await command(service, f"lead <@{COMMANDER}>", user=DEVELOPER, **here)
    assert reply["text"] == f"<@{COMMANDER}> leads incident #1 now."
    # The outbox worker delivers each change within a second; unsent updates of one message
    # would otherwise be coalesced into one call (tests/test_outbox.py).
    await service.delivery.deliver_due()
    clock.advance(minutes=20)
    reply = await command(service, "mitigated", user=COMMANDER, **here)
    assert "mitigated 10:30 UTC (+30m)" in reply["text"]
    await service.delivery.deliver_due()
    clock.advance(minutes=30)
    refused = await command(service, "resolve writes are healthy", user=DEVELOPER, **here)
    assert "may resolve an incident" in refused["text"]
    reply = await command(service, "resolve writes are healthy", user=COMMANDER, **here)
    assert "resolved 11:00 UTC (+1h in all)" in reply["text"]
    assert [(kind, actor) for kind, actor, _ in timeline(service)] == [
        ("declared", DEVELOPER),
        ("automation", "wavegate"),
        ("automation", "wavegate"),
        ("status", DEVELOPER),
        ("lead", DEVELOPER),
        ("mitigated", COMMANDER),
        ("resolved", COMMANDER),
    ]
    (incident,) = incidents(service)
    assert incident.status == "resolved"
    assert incident.commander == COMMANDER
    # Nothing resumes by itself: the summary offers it.
    assert rollout_state(service, rollout_id).state == RolloutState.paused
    await service.delivery.deliver_due()
    summary = posts_to(service, "C0INC0001")[-1]
    assert (
        "declared 10:00 UTC → mitigated 10:30 UTC (+30m) → resolved 11:00 UTC" in (summary["text"])
    )
    (resume,) = buttons(summary)
    assert json.loads(resume["value"]) == {"incident": 1, "rollout": rollout_id}
    in_thread = [p for p in posts_to(service, INCIDENTS) if p.get("thread_ts")]
    assert len(in_thread) == 4  # status, lead, mitigated, resolved
    # The announcement itself follows the incident: new lead, mitigated, resolved.
    updates = [
        c.args for c in fake(service).calls_to("chat.update") if c.args["channel"] == INCIDENTS
    ]
    assert len(updates) == 3
    assert updates[-1]["text"].startswith("✅ *Resolved* after 1h · 🟠 *Sev2 Migration regression*")
    assert updates[-1]["text"].endswith(f"(incident #1, lead <@{COMMANDER}>)")
    # The lead's hand-over invited the new lead and refreshed the topic.
    invites = fake(service).calls_to("conversations.invite")
    assert invites[-1].args["users"] == COMMANDER
    press = block_action(
        resume["action_id"],
        resume["value"],
        user_id=MANAGER,
        channel_id="C0INC0001",
        response_url=service.slack.response_url("resume"),
    )
    await service.post_signed(interaction_body(press))
    done = await fake(service).reply(1, key="resume")
    assert done["text"] == "Resumed the rollout paused by incident #1."
    assert rollout_state(service, rollout_id).state == RolloutState.running
    assert timeline(service)[-1][:2] == ("rollout", MANAGER)


async def test_resolve_may_follow_declare_and_outside_the_channel_one_open_is_implied(
    service: Service,
) -> None:
    await command(service, "declare provider-outage 3 upstream flaky", user=COMMANDER)
    reply = await command(service, "resolve upstream recovered", user=COMMANDER)
    assert "mitigated: not separately" in reply["text"]
    (incident,) = incidents(service)
    assert incident.status == "resolved"
    assert incident.mitigated_at is None


async def test_with_several_open_the_reply_lists_them_and_changes_nothing(service: Service) -> None:
    await command(service, "declare provider-outage upstream flaky", user=COMMANDER)
    await command(service, "declare sandbox-instability previews crash", user=COMMANDER)
    reply = await command(service, "status looking into it")
    assert "2 incidents are open" in reply["text"]
    assert "#1 sev2 provider-outage" in reply["text"]
    assert "#2 sev2 sandbox-instability" in reply["text"]
    assert "Usage: `/incident status [#ID] TEXT`" in reply["text"]
    assert [k for k, _, _ in timeline(service, 1) + timeline(service, 2)].count("status") == 0
    reply = await command(service, "status #2 looking into it")
    assert reply["text"] == "Update added to the timeline of #2."


async def test_a_pinned_message_joins_the_timeline_once(service: Service) -> None:
    await command(service, "declare provider-outage upstream flaky", user=COMMANDER)
    message = {"type": "message", "user": DEVELOPER, "text": "error rate 40%", "ts": "1700.0001"}
    pinned: dict[str, Any] = {
        "type": "pin_added",
        "user": COMMANDER,
        "channel_id": "C0INC0001",
        "item": {"type": "message", "channel": "C0INC0001", "message": message},
        "event_ts": "1700.0002",
    }
    fake(service).messages[("C0INC0001", "1700.0001")] = message
    reacted = {
        "type": "reaction_added",
        "user": MANAGER,
        "reaction": "pushpin",
        "item_user": DEVELOPER,
        "item": {"type": "message", "channel": "C0INC0001", "ts": "1700.0001"},
        "event_ts": "1700.0003",
    }
    elsewhere = {
        **pinned,
        "channel_id": "C0WORK",
        "item": {"type": "message", "channel": "C0WORK", "message": message},
    }
    for event in (pinned, reacted, elsewhere):
        body = event_body(event)
        response = await service.http.post(
            f"{service.url}/slack/events", data=body, headers=json_headers(body)
        )
        assert response.status == 200
    await service.app[LISTENERS].drain(5)  # pins are recorded after the ack
    pins = [t for t in timeline(service) if t[0] == "pin"]
    assert pins == [("pin", COMMANDER, f"📌 error rate 40% (said by <@{DEVELOPER}>)")]


async def test_a_pushpin_reaction_reads_the_message_and_other_reactions_are_ignored(
    service: Service,
) -> None:
    await command(service, "declare provider-outage upstream flaky", user=COMMANDER)
    fake(service).messages[("C0INC0001", "1700.0009")] = {
        "text": "failover done",
        "ts": "1700.0009",
    }
    for reaction in ("eyes", "pushpin"):
        event = {
            "type": "reaction_added",
            "user": MANAGER,
            "reaction": reaction,
            "item_user": MANAGER,
            "item": {"type": "message", "channel": "C0INC0001", "ts": "1700.0009"},
            "event_ts": "1700.0010",
        }
        body = event_body(event)
        await service.http.post(
            f"{service.url}/slack/events", data=body, headers=json_headers(body)
        )
    await service.app[LISTENERS].drain(5)  # pins are recorded after the ack
    assert [t for t in timeline(service) if t[0] == "pin"] == [("pin", MANAGER, "📌 failover done")]
    assert len(fake(service).calls_to("conversations.history")) == 1


async def test_list_shows_the_open_incidents(service: Service, clock: FakeClock) -> None:
    await command(service, "declare auth-policy-failure tokens leaked in logs", user=COMMANDER)
    clock.advance(minutes=5)
    reply = await command(service, "")
    assert reply["text"].startswith("1 open incident:")
    assert "#1 sev1 auth-policy-failure (declared) — tokens leaked in logs" in reply["text"]
    assert "declared 5m ago" in reply["text"]


async def test_scheduled_jobs_remind_once_and_post_the_review_once(
    service: Service, clock: FakeClock
) -> None:
    from bot.jobs.incidents import post_review, remind_incidents
    from bot.jobs.scheduler import jobs

    scheduled = {job.id: job for job in jobs(service.runtime)}
    review_trigger = scheduled["incident-review"].trigger
    assert review_trigger.get_next_fire_time(None, clock()) == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert "incident-reminders" in scheduled
    await command(service, "declare auth-policy-failure tokens leaked in logs", user=COMMANDER)
    clock.advance(minutes=30)
    await remind_incidents(service.runtime)
    await remind_incidents(service.runtime)
    await service.delivery.deliver_due()
    reminders = [p for p in posts_to(service, "C0INC0001") if p["text"].startswith("⏰")]
    assert [p["text"] for p in reminders] == [
        f"⏰ <@{COMMANDER}> no update on #1 for 30m (sev1 updates are due every 30m). "
        "Post one with `/incident status TEXT`."
    ]
    clock.now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    await post_review(service.runtime)
    await post_review(service.runtime)
    await service.delivery.deliver_due()
    reviews = [p["text"] for p in posts_to(service, INCIDENTS) if "Incident review" in p["text"]]
    assert len(reviews) == 1
    assert reviews[0].startswith("Incident review 2026-11: 1 incident")
    assert "1. auth-policy-failure · 1 · — / — · — / — · #1" in reviews[0]


async def test_slack_refusing_the_channel_declares_nothing(service: Service) -> None:
    fake(service).fail("conversations.create", "restricted_action")
    reply = await command(service, "declare provider-outage upstream down")
    assert reply["text"] == (
        "Slack error: Slack refused to create the channel #inc-20261127-1-upstream-down: "
        "restricted_action"
    )
    assert incidents(service) == []
    await service.delivery.deliver_due()
    assert fake(service).posts() == []


async def test_refused_lifecycle_changes_are_audited_and_change_nothing(service: Service) -> None:
    await command(service, "declare provider-outage upstream down", user=COMMANDER)
    reply = await command(service, "resolve fixed", user=DEVELOPER, channel="C0INC0001")
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith(
        "Not allowed: only incident-commanders and release-managers may resolve an incident"
    )
    assert incidents(service)[0].status == "declared"
    with Session(service.runtime.engine) as session:
        refused = session.exec(select(AuditEvent).where(AuditEvent.outcome == "refused")).all()
    assert [(e.actor, e.action, e.subject) for e in refused] == [
        (DEVELOPER, "incident.resolve", "incident:1")
    ]
    reply = await command(service, "mitigated", user=COMMANDER)
    reply = await command(service, "mitigated", user=COMMANDER)
    assert reply["text"] == "Conflict: incident #1 is mitigated already"


async def test_resolve_after_60_paused_rollouts_fits_and_resume_all_resumes_them(
    service: Service, clock: FakeClock
) -> None:
    with Session(service.runtime.engine, expire_on_commit=False) as session:
        ids = [running_rollout(session, f"2026.11.27-{n}", at=clock()).id for n in range(60)]
    reply = await command(service, f"declare migration-regression {SUMMARY}", user=DEVELOPER)
    assert reply["text"].startswith("Declared incident #1 (sev2 migration-regression)")
    assert all(rollout_state(service, i).state == RolloutState.paused for i in ids if i)
    await command(service, "resolve fixed the migration", user=COMMANDER, channel="C0INC0001")
    await service.delivery.deliver_due()
    summary = posts_to(service, "C0INC0001")[-1]
    # Within Slack's 50 blocks: Resume all, 20 per-rollout buttons and "and 40 more".
    assert len(summary["blocks"]) <= 50
    assert len(summary["text"]) <= 4000
    found = buttons(summary)
    assert found[0]["text"]["text"] == "Resume all 60"
    assert len(found) == 1 + 20
    assert "… and 40 more paused" in json.dumps(summary["blocks"], ensure_ascii=False)
    refused = block_action(
        found[0]["action_id"],
        found[0]["value"],
        user_id=DEVELOPER,
        channel_id="C0INC0001",
        response_url=service.slack.response_url("all-refused"),
    )
    await service.post_signed(interaction_body(refused))
    no = await fake(service).reply(1, key="all-refused")
    assert "only release-managers may resume a rollout" in no["text"]
    assert all(rollout_state(service, i).state == RolloutState.paused for i in ids if i)
    press = block_action(
        found[0]["action_id"],
        found[0]["value"],
        user_id=MANAGER,
        channel_id="C0INC0001",
        response_url=service.slack.response_url("all"),
    )
    await service.post_signed(interaction_body(press))
    done = await fake(service).reply(1, key="all")
    assert done["text"] == "Resumed 60 rollouts paused by incident #1."
    assert all(rollout_state(service, i).state == RolloutState.running for i in ids if i)
