"""A user-group lookup that fails is retried, never cached as an empty group, and a permission
resting on the group fails closed with a reply that says why."""

from __future__ import annotations

import socket

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.http.keys import LISTENERS
from bot.slack.requests import GroupMembership
from commands.policy import Policy
from commands.policy_file import builtin_policy
from tests.conftest import Service, with_channels
from tests.support.slack import BOT_TOKEN, FakeSlack

GROUP = "S0RELEASE"
MEMBER = "U0GM1"


@pytest.fixture
def policy() -> Policy:
    """Release managers are a Slack user group."""
    base = with_channels(builtin_policy())
    return base.model_copy(update={"roles": {**base.roles, "release-managers": [GROUP]}})


async def reply_to(service: Service, text: str) -> str:
    response = await service.command("/ready", text, user=MEMBER)
    assert response.status == 200
    return str((await response.json())["text"])


WAIVE = "waive 1.0.0 observability dashboards exist"


async def test_a_failed_lookup_refuses_saying_why_and_is_retried(service: Service) -> None:
    membership = service.app[LISTENERS].membership
    membership.ttl = 0  # every request reads the group afresh, until the end of the test
    service.slack.usergroups[GROUP] = [MEMBER]
    assert (await reply_to(service, "new 1.0.0")).startswith("Registered")
    service.slack.fail("usergroups.users.list", "internal_error")
    refused = await reply_to(service, WAIVE)
    assert refused.startswith("Not allowed")
    assert f"members of user group {GROUP} could not be read" in refused
    # Within the retry window the failure is remembered: Slack is not asked again.
    assert "could not be read" in await reply_to(service, WAIVE)
    assert len(service.slack.calls_to("usergroups.users.list")) == 2
    membership.retry_after = 0
    accepted = await reply_to(service, WAIVE)
    assert accepted.startswith("observability waived for 1.0.0"), accepted
    assert len(service.slack.calls_to("usergroups.users.list")) == 3
    # Read successfully, it is cached: the next request asks Slack nothing.
    membership.ttl = 300
    await reply_to(service, "new 1.0.1")
    assert len(service.slack.calls_to("usergroups.users.list")) == 3


async def test_an_unreachable_slack_is_unread_not_empty() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = AsyncWebClient(token=BOT_TOKEN, base_url=f"http://127.0.0.1:{port}/api/", timeout=2)
    membership = GroupMembership(client, retry_after=0)
    assert await membership.groups_of(MEMBER, {GROUP}) == (frozenset(), frozenset({GROUP}))
    slack = await FakeSlack().start()
    try:
        slack.usergroups[GROUP] = [MEMBER]
        membership.client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        found = await membership.groups_of(MEMBER, {GROUP})
        assert found == (frozenset({GROUP}), frozenset())
    finally:
        await slack.stop()


async def test_a_user_outside_a_readable_group_is_refused_plainly(service: Service) -> None:
    service.slack.usergroups[GROUP] = ["U0SOMEONE"]
    await reply_to(service, "new 1.0.0")
    refused = await reply_to(service, WAIVE)
    assert refused.startswith("Not allowed")
    assert "could not be read" not in refused
