"""The leader's Slack client checks the lease as a request leaves: a lease that lapsed after the
outbox's own check (a freeze between the two) stops the request before Slack sees it."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.lease_guard import GuardedClient, LeaseLapsed
from tests.support.slack import FakeSlack


class Lease:
    def __init__(self) -> None:
        self.held = True
        self.asked = 0

    def leading(self) -> bool:
        self.asked += 1
        return self.held


async def test_a_lapsed_lease_stops_a_new_connection_and_a_reused_one(slack: FakeSlack) -> None:
    lease = Lease()
    guard = GuardedClient(
        AsyncWebClient(token="xoxb-test-token", base_url=slack.api_url), lease.leading
    )
    try:
        client = guard.client()
        await client.chat_postMessage(channel="C0ROLLOUTS", text="first")  # a new connection
        await client.chat_postMessage(channel="C0ROLLOUTS", text="second")  # kept alive, reused
        assert [post["text"] for post in slack.posts()] == ["first", "second"]
        assert lease.asked == 2  # one check per request, at the connection step
        lease.held = False
        with pytest.raises(LeaseLapsed):
            await client.chat_postMessage(channel="C0ROLLOUTS", text="after the lease")
        assert [post["text"] for post in slack.posts()] == ["first", "second"]
    finally:
        await guard.close()


async def test_each_loop_gets_its_own_session_and_close_ends_it(slack: FakeSlack) -> None:
    guard = GuardedClient(
        AsyncWebClient(token="xoxb-test-token", base_url=slack.api_url), lambda: True
    )
    first = guard.client()
    assert guard.client() is first  # the same loop, the same client and session
    await guard.close()
    assert first.session is not None
    assert first.session.closed
    assert guard.client() is not first  # a new session after close
    await guard.close()
