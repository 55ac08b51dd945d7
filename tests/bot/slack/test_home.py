"""The App Home over real HTTP: a signed `app_home_opened` event publishes the viewer's Home at
the (fake) Slack, a change re-publishes it for recent viewers, and its buttons work."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.http.keys import HOME, LISTENERS
from commands.policy import Policy
from tests.conftest import COMMANDER, DEVELOPER, MANAGER, Service, run
from tests.support.clock import FakeClock
from tests.support.home import release_manager_scene, with_owner
from tests.support.incidents import event_body, json_headers
from tests.support.signing import block_action, interaction_body, signed_headers


@pytest.fixture
def policy(policy: Policy) -> Policy:
    return with_owner(policy)


async def open_home(service: Service, user: str) -> dict[str, Any]:
    """Open the Home as `user`; returns the view Slack received for them."""
    before = len(service.slack.calls_to("views.publish"))
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
    body = event_body({**event, "event_ts": "1700000000.000100"})
    response = await service.http.post(
        f"{service.url}/slack/events", data=body, headers=json_headers(body)
    )
    assert response.status == 200
    await service.app[LISTENERS].drain(5)
    published = service.slack.calls_to("views.publish")[before:]
    assert [call.args["user_id"] for call in published] == [user]
    return published_view(published[-1].args)


def published_view(args: dict[str, Any]) -> dict[str, Any]:
    view = args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    View(**view).validate_json()
    assert len(view["blocks"]) <= 100
    return dict(view)


def actions_in(view: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    for block in view["blocks"]:
        elements = list(block.get("elements", []))
        if block.get("accessory"):
            elements.append(block["accessory"])
        for element in elements:
            if element.get("type") == "button":
                found.add((element["action_id"], json.loads(element["value"])["release"]))
    return found


async def test_each_role_gets_their_own_home(service: Service, clock: FakeClock) -> None:
    with service.runtime.unit() as ctx:
        await release_manager_scene(ctx, clock)
    manager = actions_in(await open_home(service, MANAGER))
    assert {("wave.promote", "1.0"), ("wave.rollback.confirm", "2.0")} <= manager
    commander = actions_in(await open_home(service, COMMANDER))
    assert ("wave.rollback.request", "1.0") in commander
    assert not {a for a, _ in commander} & {"wave.promote", "wave.resume"}
    developer = actions_in(await open_home(service, DEVELOPER))
    assert {a for a, _ in developer} == {"wave.pause"}


async def test_a_change_republishes_the_home_of_recent_viewers(
    service: Service, clock: FakeClock
) -> None:
    with service.runtime.unit() as ctx:
        await release_manager_scene(ctx, clock)
    await open_home(service, DEVELOPER)
    publisher = service.app[HOME]
    assert await publisher.refresh() == 0  # nothing changed: nothing sent again
    with service.runtime.unit() as ctx:
        reply = await run(ctx, "/wave pause 3.0 holding for the load test", user=DEVELOPER)
        assert not reply.error, reply.text
    assert await publisher.refresh() == 1
    view = published_view(service.slack.calls_to("views.publish")[-1].args)
    assert ("wave.pause", "3.0") not in actions_in(view)
    assert "holding for the load test" in json.dumps(view)


async def test_a_press_on_the_home_is_answered_by_direct_message_and_a_fresh_home(
    service: Service, clock: FakeClock
) -> None:
    with service.runtime.unit() as ctx:
        await release_manager_scene(ctx, clock)
    await open_home(service, MANAGER)
    payload = block_action("wave.pause", json.dumps({"release": "3.0"}), user_id=MANAGER)
    payload.pop("channel")
    payload.pop("response_url")
    payload["container"] = {"type": "view", "view_id": "V0HOME"}
    payload["view"] = {"id": "V0HOME", "type": "home", "blocks": []}
    body = interaction_body(payload)
    response = await service.http.post(
        f"{service.url}/slack/events", data=body, headers=signed_headers(body)
    )
    assert response.status == 200
    await service.app[LISTENERS].drain(5)
    dm = service.slack.posts()[-1]
    assert dm["channel"] == MANAGER
    assert dm["text"] == "Paused 3.0."
    fresh = published_view(service.slack.calls_to("views.publish")[-1].args)
    assert ("wave.pause", "3.0") not in actions_in(fresh)
    assert ("wave.resume", "3.0") in actions_in(fresh)
    # Nothing was sent to a response URL: a Home press has none.
    assert service.slack.responses == []
