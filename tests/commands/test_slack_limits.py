"""Every view within Slack's limits at any size: rendered with large inputs, validated with
slack_sdk's block models and the limits of commands/limits.py."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select

from bot.slack.chat import SlackIncidentChat
from commands.core import Context, Reply, Request
from commands.home.content import home_content
from commands.home.view import home_view
from commands.incident import views as incident_views
from commands.limits import (
    HEADER_TEXT,
    MESSAGE_BLOCKS,
    MESSAGE_TEXT,
    SECTION_TEXT,
    VIEW_BLOCKS,
    fit_blocks,
    fit_text,
)
from commands.policy import Policy
from commands.policy_file import builtin_policy, parse_policy
from storage.audit import Outcome, record_event
from storage.models import Incident, OutboxPost, Rollout, RolloutState
from tests.conftest import MANAGER, run, with_channels
from tests.support.clock import FakeClock
from tests.support.slack import BOT_TOKEN, FakeSlack
from tests.support.waves import SMALL_POLICY, local_actuator, start

ROLLOUTS = 60
LONG = "x" * 2000


def long_name(n: int) -> str:
    return f"{n:03d}." + "r" * 96  # 100 characters, the longest a release may be


def valid_blocks(blocks: list[dict[str, Any]], limit: int) -> None:
    assert len(blocks) <= limit, f"{len(blocks)} blocks"
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()  # slack_sdk's own checks (texts, elements, ids)
        text = raw.get("text")
        if isinstance(text, dict):
            bound = HEADER_TEXT if raw["type"] == "header" else SECTION_TEXT
            assert len(text["text"]) <= bound, (raw["type"], len(text["text"]))
        for element in raw.get("elements", []):
            if isinstance(element, dict) and element.get("type") == "mrkdwn":
                assert len(element["text"]) <= SECTION_TEXT
        if raw["type"] == "actions":
            assert len(raw["elements"]) <= 25


def valid_message(text: str, blocks: list[dict[str, Any]] | None) -> None:
    assert len(text) <= MESSAGE_TEXT, f"{len(text)} characters of text"
    if blocks:
        valid_blocks(blocks, MESSAGE_BLOCKS)


def valid_reply(reply: Reply) -> None:
    assert not reply.error, reply.text
    valid_message(reply.text, reply.blocks)


@pytest.fixture
def policy() -> Policy:
    items = "\n".join(
        f"  - {{id: item-{n:02d}, title: {'Long title ' * 20}{n}}}" for n in range(60)
    )
    text = SMALL_POLICY.replace("  - {id: tests, title: Tests pass}", items)
    # The blueprint's incident classes, so an incident can pause the 60 rollouts.
    return with_channels(parse_policy(text)).model_copy(
        update={"incidents": builtin_policy().incidents}
    )


def test_the_limiter_names_what_it_leaves_out() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": LONG * 2}}] * 70
    fitted = fit_blocks(blocks, where="see the App Home")
    assert len(fitted) == MESSAGE_BLOCKS
    assert "21 more blocks not shown: see the App Home" in json.dumps(fitted[-1])
    assert all(len(b["text"]["text"]) <= SECTION_TEXT for b in fitted[:-1])
    assert len(fit_text("line\n" * 2000, MESSAGE_TEXT, more="and more")) <= MESSAGE_TEXT


async def test_every_view_stays_within_slacks_limits_at_size(
    ctx: Context, clock: FakeClock, slack: FakeSlack
) -> None:
    local_actuator(ctx)
    ctx.ports.chat = SlackIncidentChat(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url))
    for n in range(ROLLOUTS):
        await start(ctx, long_name(n))
    first = long_name(0)

    # A 60-item checklist (none dropped), the overview of 60 rollouts, one rollout in full.
    await run(ctx, "/ready new 9.9")
    checklist = await run(ctx, "/ready 9.9")
    valid_reply(checklist)
    assert "item-59" in json.dumps(checklist.blocks)
    assert "item-45" in json.dumps(checklist.blocks)
    valid_reply(await run(ctx, "/wave"))
    valid_reply(await run(ctx, f"/wave status {first}"))

    # 200 history events with 2,000-character reasons, in pages.
    for n in range(200):
        record_event(
            actor=MANAGER,
            action="wave.pause",
            subject=f"release:{first}",
            outcome=Outcome.ok,
            reason=LONG,
            at=ctx.now() + timedelta(seconds=n),
            session=ctx.session,
        )
    ctx.session.commit()
    page = await run(ctx, f"/wave history {first}")
    valid_reply(page)
    found = re.search(r"newest first: page 1 of (\d+) \((\d+) events\)", page.text)
    assert found is not None, page.text[:300]
    pages, events = int(found.group(1)), int(found.group(2))
    assert events >= 200
    assert pages == -(-events // 25)
    last = await run(ctx, f"/wave history {first} --page {pages}")
    valid_reply(last)
    assert f"page {pages} of {pages}" in last.text

    # A rollback request with a 2,000-character reason.
    valid_reply(await run(ctx, f"/rollback {first} {LONG}"))

    # An incident that paused 60 rollouts, with a 2,000-character summary: declare, list,
    # resolve (a summary of 60 paused rollouts).
    declared = await run(ctx, f"/incident declare sandbox-instability sev2 {LONG}")
    assert not declared.error, declared.text
    valid_reply(await run(ctx, "/incident"))
    incident = ctx.session.exec(select(Incident)).first()
    assert incident is not None
    paused = [
        (r, long_name(i))
        for i, r in enumerate(ctx.session.exec(select(Rollout)).all())
        if r.state == RolloutState.paused
    ]
    assert len(paused) == ROLLOUTS
    text, blocks = incident_views.resolve_summary(incident, LONG, paused)
    valid_message(text, blocks)
    assert "Resume all" in json.dumps(blocks)
    form = incident_views.declare_form(ctx.policy, releases=[long_name(n) for n in range(200)])
    valid_blocks(form["blocks"], VIEW_BLOCKS)

    # The App Home of a release manager with all of it.
    home = home_view(home_content(ctx, Request(command="home", text="", user_id=MANAGER)))
    valid_blocks(home["blocks"], VIEW_BLOCKS)

    # And nothing over the limits was ever queued for Slack.
    posts = ctx.session.exec(select(OutboxPost)).all()
    assert len(posts) > ROLLOUTS
    for post in posts:
        queued = json.loads(post.blocks) if post.blocks else None
        valid_message(post.text, queued)
    # Nor posted straight to Slack (the incident channel's posts).
    for call in slack.calls_to("chat.postMessage"):
        sent = call.args.get("blocks")
        listed = json.loads(sent) if isinstance(sent, str) else sent
        valid_message(str(call.args.get("text", "")), listed)
