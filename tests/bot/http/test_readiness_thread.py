"""Readiness activity over real HTTP against the fake Slack, on SQLite and PostgreSQL: one message
per release in the rollouts channel, kept up to date, every event a reply in its thread, and the
command's reply pointing at that thread; `POST /api/v1/releases` refuses command words."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session, select

from bot.http.keys import LISTENERS
from commands.policy import ChecklistItem, Policy, Verify
from commands.ready.checklist import RESERVED
from storage.models import AuditEvent, OutboxPost, Release
from tests.conftest import MANAGER, ROLLOUTS, Service
from tests.support.slack import BOT_TOKEN, FakeSlack

AUTH = {"Authorization": "Bearer test-api-token"}
WORKSPACE = "https://wavegate-test.slack.com"
ITEMS = 30


@pytest.fixture
def policy(policy: Policy) -> Policy:
    """30 items verified by a person, and the workspace's address for permalinks."""
    items = [
        ChecklistItem(id=f"item-{n:02d}", title=f"Item {n}", verify=Verify(by="person"))
        for n in range(1, ITEMS + 1)
    ]
    channels = policy.channels.model_copy(update={"workspace_url": WORKSPACE})
    return policy.model_copy(update={"checklist": items, "channels": channels})


async def ready(service: Service, text: str) -> str:
    """`/ready TEXT` as the release manager; the reply's text (in the ack, or sent after it),
    then the outbox delivered."""
    before = len(service.slack.responses_to())
    response = await service.command("/ready", text, user=MANAGER)
    assert response.status == 200
    body = await response.text()
    if body and (answer := json.loads(body).get("text")):
        text = str(answer)
    else:
        await service.app[LISTENERS].drain(5)
        text = str(service.slack.responses_to()[before]["text"])
    await service.delivery.deliver_due()
    return text


async def api(service: Service, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await service.http.post(f"{service.url}{path}", json=body, headers=AUTH)
    answer = await response.json()
    await service.delivery.deliver_due()
    return response.status, answer


def rollouts_posts(slack: FakeSlack) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rollouts channel's accepted posts: top-level, and replies in a thread."""
    posts = [c.args for c in slack.accepted() if c.args.get("channel") == ROLLOUTS]
    return (
        [p for p in posts if not p.get("thread_ts")],
        [p for p in posts if p.get("thread_ts")],
    )


async def test_a_30_item_release_is_one_message_and_its_thread(any_service: Service) -> None:
    slack = any_service.slack
    status, body = await api(any_service, "/api/v1/releases", {"version": "1.0"})
    assert status == 201, body
    for n in range(1, 28):
        reply = await ready(any_service, f"check 1.0 item-{n:02d} https://ci.example/run/{n}")
        assert reply.startswith(f"item-{n:02d} passed for 1.0. {n} of 30 items done.")
    status, body = await api(
        any_service,
        "/api/v1/checks",
        {"release": "1.0", "item": "item-28", "status": "passed", "evidence": "https://ci/28"},
    )
    assert status == 201, body
    failed = await ready(any_service, "fail 1.0 item-29 the load test timed out")
    assert failed.startswith("item-29 failed for 1.0. 28 of 30 items done.")
    assert await ready(any_service, "check 1.0 item-29 https://ci.example/load/2")
    last = await ready(any_service, "waive 1.0 item-30 not relevant for this release")
    assert last.startswith("item-30 waived for 1.0. 30 of 30 items done; the checklist is complete")

    top, replies = rollouts_posts(slack)
    assert len(top) == 1, [p["text"] for p in top]
    parent = slack.accepted()[0]
    assert parent.args["text"].startswith("📝 Readiness of *1.0*: 0 of 30 items done.")
    thread_ts = {p["thread_ts"] for p in replies}
    assert len(thread_ts) == 1
    # registered + 27 checks + 1 from CI + fail + check again + waive
    assert len(replies) == 32
    assert replies[0]["text"] == "api registered release candidate *1.0* (30 items)."
    assert replies[-1]["text"].startswith(f"⚪ <@{MANAGER}> marked *item-30* waived for 1.0")

    updates = slack.accepted("chat.update")
    # Delivered after each event: the first event went out with the message itself, each
    # later one updated it once (a burst between deliveries costs one update).
    assert len(updates) == len(replies) - 1
    assert {u.args["ts"] for u in updates} == thread_ts
    assert (
        updates[-1].args["text"]
        == "📝 Readiness of *1.0*: every item done (30 items) — ready to roll out."
    )
    during = [u.args["text"] for u in updates if "Failed: item-29" in u.args["text"]]
    assert during
    assert "28 of 30 items done" in during[0]

    # The reply links to the thread the way Slack's own permalink does.
    (only_ts,) = thread_ts
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    permalink = (await client.chat_getPermalink(channel=ROLLOUTS, message_ts=only_ts))["permalink"]
    assert f"Its thread: <{permalink}|1.0's checklist message> in <#{ROLLOUTS}>." in last


async def test_before_the_message_is_posted_the_reply_names_the_thread(
    any_service: Service,
) -> None:
    response = await any_service.command("/ready", "new 2.0", user=MANAGER)
    reply = (await response.json())["text"]
    assert reply == (
        "Registered release candidate 2.0; its checklist has 30 items. See it with `/ready 2.0`. "
        f"Every change is in the thread of 2.0's checklist message in <#{ROLLOUTS}>."
    )
    await any_service.delivery.deliver_due()
    top, replies = rollouts_posts(any_service.slack)
    assert len(top) == 1
    assert top[0]["text"].startswith(
        "📝 Readiness of *2.0*: 0 of 30 items done. Waiting on: item-01"
    )
    assert [p["text"] for p in replies] == [
        f"<@{MANAGER}> registered release candidate *2.0* (30 items)."
    ]


async def test_the_api_refuses_every_command_word_as_a_release(any_service: Service) -> None:
    assert {"help", "status", "start", "new", "check"} <= RESERVED
    for version in [*sorted(RESERVED), "Help", "STATUS"]:
        status, body = await api(any_service, "/api/v1/releases", {"version": version})
        assert status == 400, body
        assert body == {
            "error": f"{version!r} is a command word, so it cannot name a release (it would read "
            "as the command): choose another, e.g. 2026.11.27-1"
        }
    with Session(any_service.runtime.engine) as session:
        assert session.exec(select(Release)).all() == []
        assert session.exec(select(OutboxPost)).all() == []
        assert [e.action for e in session.exec(select(AuditEvent))] == []
    assert any_service.slack.accepted() == []


async def test_a_burst_between_deliveries_costs_one_message_not_one_per_event(
    any_service: Service,
) -> None:
    slack = any_service.slack
    status, _ = await api(any_service, "/api/v1/releases", {"version": "3.0"})
    assert status == 201
    await any_service.delivery.deliver_due()
    for n in range(1, 11):
        response = await any_service.command("/ready", f"fail 3.0 item-{n:02d} flaky", user=MANAGER)
        assert response.status == 200
    await any_service.delivery.deliver_due()
    top, replies = rollouts_posts(slack)
    assert len(top) == 1
    assert len(replies) == 11
    # Ten summaries queued while nothing was sent went out as one update, with the last content.
    (update,) = slack.accepted("chat.update")
    assert update.args["text"].startswith("📝 Readiness of *3.0*: 0 of 30 items done. Failed: ")
    assert "item-08 and 2 more." in update.args["text"]
