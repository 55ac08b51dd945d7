"""The App Home: what a release manager, an incident commander and a developer each see, with
only the buttons each may use, within Slack's limits at any size."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.views import View

from commands.core import Context, Request
from commands.home.content import home_content
from commands.home.view import VIEW_BLOCKS, home_text, home_view
from commands.policy import ChecklistItem, Policy
from storage.models import Incident
from tests.conftest import COMMANDER, DEVELOPER, MANAGER
from tests.support.clock import FakeClock
from tests.support.home import release_manager_scene, with_owner
from tests.support.incidents import running_rollout


@pytest.fixture
def policy(policy: Policy) -> Policy:
    return with_owner(policy)


def home_of(ctx: Context, user: str) -> dict[str, Any]:
    view = home_view(home_content(ctx, Request(command="home", text="", user_id=user)))
    View(**view).validate_json()
    assert len(view["blocks"]) <= VIEW_BLOCKS
    return view


def buttons(view: dict[str, Any]) -> list[tuple[str, str]]:
    """(action id, release) of every button, wherever it sits (actions or accessory)."""
    found = []
    for block in view["blocks"]:
        elements = list(block.get("elements", []))
        if block.get("accessory"):
            elements.append(block["accessory"])
        for element in elements:
            if element.get("type") == "button":
                found.append((element["action_id"], json.loads(element["value"])["release"]))
    return found


def text_of(view: dict[str, Any]) -> str:
    parts = []
    for block in view["blocks"]:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text["text"])
        for element in block.get("elements", []):
            if isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


async def test_release_manager_sees_what_to_promote_and_the_rollback_to_confirm(
    ctx: Context, clock: FakeClock
) -> None:
    await release_manager_scene(ctx, clock)
    view = home_of(ctx, MANAGER)
    pressed = buttons(view)
    assert ("wave.promote", "1.0") in pressed
    assert ("wave.rollback.confirm", "2.0") in pressed
    assert ("wave.resume", "2.0") in pressed
    assert ("wave.pause", "3.0") in pressed
    # 3.0 has not passed its window: no Promote for it anywhere.
    assert ("wave.promote", "3.0") not in pressed
    assert ("wave.promote", "2.0") not in pressed
    text = text_of(view)
    assert "*1.0*: wave 1 (staging) passed its window with a successful verdict" in text
    assert "asked to roll back *2.0*" in text
    assert "Active rollouts (3)" in text
    assert "Open incidents (1)" in text
    assert "Checklist of 4.0" in text


async def test_incident_commander_sees_the_incident_they_lead_and_no_promote(
    ctx: Context, clock: FakeClock
) -> None:
    await release_manager_scene(ctx, clock)
    view = home_of(ctx, COMMANDER)
    pressed = {action for action, _ in buttons(view)}
    assert "wave.promote" not in pressed
    assert "wave.resume" not in pressed  # release managers resume
    assert {"wave.pause", "wave.rollback.request"} <= pressed
    # They asked for the rollback of 2.0 themselves: confirming it waits on someone else.
    assert "wave.rollback.confirm" not in pressed
    assert "You lead #1 sev3 sandbox-instability" in text_of(view)


async def test_developer_sees_their_item_and_only_pause(ctx: Context, clock: FakeClock) -> None:
    await release_manager_scene(ctx, clock)
    view = home_of(ctx, DEVELOPER)
    assert {action for action, _ in buttons(view)} == {"wave.pause"}
    text = text_of(view)
    assert "*concurrency* of 4.0 (pending) is yours" in text
    assert "You lead" not in text
    assert "asked to roll back" not in text


async def test_nothing_waits_on_someone_with_no_role(ctx: Context) -> None:
    view = home_of(ctx, DEVELOPER)
    text = text_of(view)
    assert "Nothing waits on you." in text
    assert "No rollout is active" in text
    assert "No incident is open." in text
    assert buttons(view) == []


async def test_home_stays_within_slack_limits_at_any_size(
    ctx: Context, clock: FakeClock, policy: Policy
) -> None:
    items = [ChecklistItem(id=f"item-{n}", title="x" * 300, owner=DEVELOPER) for n in range(60)]
    ctx.policy = policy.model_copy(update={"checklist": items})
    now = clock()
    for n in range(60):
        running_rollout(ctx.session, f"2026.11.{n:02d}-" + "9" * 80, at=now - timedelta(hours=3))
    for n in range(30):
        ctx.session.add(
            Incident(
                incident_class="provider-outage",
                severity=3,
                summary="s" * 2000,
                commander=DEVELOPER,
                channel=f"C0INC{n:04d}",
                declared_by=COMMANDER,
                declared_at=now,
                last_update_at=now,
            )
        )
    ctx.session.flush()
    for user in (MANAGER, COMMANDER, DEVELOPER):
        view = home_of(ctx, user)
        for block in view["blocks"]:
            text = block.get("text")
            if isinstance(text, dict):
                assert len(text["text"]) <= 3000
    text = text_of(home_of(ctx, MANAGER))
    assert "… and 45 more — see `/wave status` or GET /api/v1/rollouts" in text
    assert "… and 20 more — see `/incident` or GET /api/v1/incidents" in text


async def test_home_reads_as_text_for_the_console(ctx: Context, clock: FakeClock) -> None:
    await release_manager_scene(ctx, clock)
    text = home_text(home_content(ctx, Request(command="home", text="", user_id=MANAGER)))
    assert "== Waiting on you ==" in text
    assert "[Promote wave 1]" in text
    assert "[Confirm rollback]" in text
    assert "== Active rollouts (3) ==" in text
