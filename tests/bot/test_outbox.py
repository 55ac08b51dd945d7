"""The Slack outbox: a 429 or a crash loses no post; keyed messages update in place."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.outbox import OutboxDelivery
from storage.outbox import enqueue_post, pending_posts
from tests.support.clock import FakeClock
from tests.support.slack import BOT_TOKEN, FakeSlack


def queue(
    engine: Engine,
    clock: FakeClock,
    text: str,
    *,
    message_key: str | None = None,
    thread_key: str | None = None,
) -> None:
    with Session(engine) as session:
        enqueue_post(
            channel="C0ROLLOUTS",
            text=text,
            at=clock(),
            session=session,
            message_key=message_key,
            thread_key=thread_key,
        )
        session.commit()


def delivery(engine: Engine, slack: FakeSlack, clock: FakeClock) -> OutboxDelivery:
    return OutboxDelivery(engine, AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url), clock)


async def test_rate_limited_post_waits_for_retry_after_then_goes(
    engine: Engine, slack: FakeSlack, clock: FakeClock
) -> None:
    queue(engine, clock, "wave 2 promoted")
    slack.fail("chat.postMessage", "ratelimited", status=429, retry_after=30)
    worker = delivery(engine, slack, clock)
    assert await worker.deliver_due() == 0
    clock.advance(seconds=29)
    assert await worker.deliver_due() == 0
    assert len(slack.calls_to("chat.postMessage")) == 1  # not retried before Retry-After
    clock.advance(seconds=1)
    assert await worker.deliver_due() == 1
    assert [p["text"] for p in slack.posts()] == ["wave 2 promoted", "wave 2 promoted"]
    with Session(engine) as session:
        assert pending_posts(session=session) == []
    assert worker.errors == {"ratelimited": 1}


async def test_a_new_worker_delivers_what_a_crashed_one_left(
    engine: Engine, slack: FakeSlack, clock: FakeClock
) -> None:
    queue(engine, clock, "one")
    queue(engine, clock, "two")
    # Nothing was delivered before the "crash"; a fresh worker finds both in the table.
    assert await delivery(engine, slack, clock).deliver_due() == 2
    assert [p["text"] for p in slack.posts()] == ["one", "two"]


async def test_keyed_message_is_updated_in_place_and_threaded_under(
    engine: Engine, slack: FakeSlack, clock: FakeClock
) -> None:
    worker = delivery(engine, slack, clock)
    queue(engine, clock, "rollout 1: wave 1", message_key="rollout:1")
    assert await worker.deliver_due() == 1
    queue(engine, clock, "promoted to wave 2", thread_key="rollout:1")
    queue(engine, clock, "rollout 1: wave 2", message_key="rollout:1")
    assert await worker.deliver_due() == 2
    first, reply = slack.posts()
    assert "thread_ts" not in first or first["thread_ts"] is None
    (update,) = [c.args for c in slack.calls_to("chat.update")]
    assert reply["thread_ts"] == update["ts"]
    assert update["text"] == "rollout 1: wave 2"


async def test_thread_reply_waits_for_its_parent(
    engine: Engine, slack: FakeSlack, clock: FakeClock
) -> None:
    worker = delivery(engine, slack, clock)
    queue(engine, clock, "status", message_key="rollout:7")
    queue(engine, clock, "event", thread_key="rollout:7")
    slack.fail("chat.postMessage", "ratelimited", status=429, retry_after=5)
    assert await worker.deliver_due() == 0
    assert len(slack.calls_to("chat.postMessage")) == 1  # the event did not jump the queue
    clock.advance(timedelta(seconds=5))
    assert await worker.deliver_due() == 2
    texts = [p["text"] for p in slack.posts()]
    assert texts == ["status", "status", "event"]


async def test_slack_down_backs_off_and_keeps_the_post(engine: Engine, clock: FakeClock) -> None:
    queue(engine, clock, "hello")
    client = AsyncWebClient(token=BOT_TOKEN, base_url="http://127.0.0.1:9/api/")
    worker = OutboxDelivery(engine, client, clock)
    assert await worker.deliver_due() == 0
    with Session(engine) as session:
        (post,) = pending_posts(session=session)
        assert post.attempts == 1
        assert post.last_error is not None
        assert post.last_error.startswith("connection")
        assert post.next_attempt_at > clock()


async def test_unsent_updates_of_one_message_are_coalesced(
    engine: Engine, slack: FakeSlack, clock: FakeClock
) -> None:
    worker = delivery(engine, slack, clock)
    queue(engine, clock, "rollout 1: wave 1", message_key="rollout:1")
    assert await worker.deliver_due() == 1
    for wave in (2, 3, 4):
        queue(engine, clock, f"rollout 1: wave {wave}", message_key="rollout:1")
    queue(engine, clock, "an event", thread_key="rollout:1")
    assert await worker.deliver_due() == 2
    updates = [c.args["text"] for c in slack.calls_to("chat.update")]
    assert updates == ["rollout 1: wave 4"]
    assert [p["text"] for p in slack.posts()] == ["rollout 1: wave 1", "an event"]
