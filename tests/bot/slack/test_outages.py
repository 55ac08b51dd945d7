"""With Slack's API out of reach, a request from Slack still gets a 200 and a plain answer, never
a 500; a change already acknowledged is kept and its post waits in the outbox."""

from __future__ import annotations

from sqlmodel import select

from bot.http.keys import LISTENERS
from bot.slack.app import UNREACHABLE
from commands.core import Context
from commands.policy import Policy
from storage.models import Rollout
from storage.outbox import pending_posts
from tests.conftest import DEVELOPER, Service
from tests.support.clock import FakeClock
from tests.support.waves import rollout, start


def rollout_count(ctx: Context) -> int:
    return len(ctx.session.exec(select(Rollout)).all())


async def test_first_request_with_slack_unreachable_gets_a_plain_answer(service: Service) -> None:
    await service.slack.stop()
    response = await service.command("/wave", "status")
    assert response.status == 200
    body = await response.json()
    assert body == {"response_type": "ephemeral", "text": UNREACHABLE}


async def test_a_change_acknowledged_before_an_outage_is_kept_and_its_post_waits(
    service: Service, clock: FakeClock
) -> None:
    with service.runtime.unit() as ctx:
        await start(ctx, "1.0")
    # A first request while Slack answers (Bolt checks the token once).
    assert (await service.command("/wave", "status")).status == 200
    await service.slack.stop()
    response = await service.command("/wave", "pause 1.0 holding", user=DEVELOPER)
    assert response.status == 200
    await service.app[LISTENERS].drain(5)
    with service.runtime.unit() as ctx:
        assert rollout(ctx, "1.0").state == "paused"
        assert any("holding" in post.text for post in pending_posts(session=ctx.session))


async def test_a_group_lookup_with_slack_unreachable_is_not_a_500(
    service: Service, policy: Policy
) -> None:
    roles = {**policy.roles, "release-managers": ["S0RELEASE"]}
    service.runtime.policy = policy.model_copy(update={"roles": roles})
    assert (await service.command("/wave", "status")).status == 200
    # The group's members are read again at the next request, as when the cache has expired.
    service.app[LISTENERS].membership.ttl = 0
    await service.slack.stop()
    # A read that needs no permission is answered as usual; the membership is only unknown.
    response = await service.command("/wave", "status")
    assert response.status == 200
    assert (await response.json())["text"].startswith("No rollout is active")
    # One that rests on the group is acknowledged too (its refusal, in plain words, is
    # tests/bot/slack/test_group_membership.py), and changes nothing.
    refused = await service.command("/wave", "start 9.9")
    assert refused.status == 200
    await service.app[LISTENERS].drain(5)
    with service.runtime.unit() as ctx:
        assert rollout_count(ctx) == 0
