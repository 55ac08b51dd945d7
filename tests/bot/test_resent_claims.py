"""A claim re-sent by recovery that the deploy system does not confirm is never released: its
first sender (another replica, before it died) may have reached the deploy system, which then
applied it. It stays pending with its key, is sent again after a backoff, the thread says so
once and /wave status shows it; once the deploy system answers it settles (tests against the
fake deploy system over real HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.jobs.recovery import recover_pending, send_deadline
from commands.core import Context
from commands.policy import Policy
from commands.wave.rules.advance import claim_promotion
from storage.releases import get_release
from storage.rollouts import rollout_of
from tests.support.actuation import Actuated, actuated_service
from tests.support.actuator import FakeDeploySystem
from tests.support.clock import FakeClock
from tests.support.slack import FakeSlack
from tests.support.waves import small_policy

VERSION = "2026.12.02-1"


@pytest.fixture
def policy() -> Policy:
    return small_policy()


@pytest.fixture
async def deploy() -> AsyncIterator[FakeDeploySystem]:
    fake = await FakeDeploySystem().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def actuated(
    engine: Engine, policy: Policy, clock: FakeClock, slack: FakeSlack, deploy: FakeDeploySystem
) -> AsyncIterator[Actuated]:
    runner, actuated = await actuated_service(engine, policy, clock, slack, deploy)
    yield actuated
    await actuated.service.http.close()
    await runner.cleanup()


async def left_by_a_dead_replica(a: Actuated) -> str:
    """A promote claimed by another replica, whose webhook reached the deploy system (which
    applied it) before the replica died; returns the claim's idempotency key."""
    with Session(a.engine, expire_on_commit=False) as session:
        ctx = Context(session=session, policy=a.runtime.policy, clock=a.clock)
        release = get_release(VERSION, session=session)
        assert release is not None
        rollout = rollout_of(release, session=session)
        assert rollout is not None
        claim = claim_promotion(ctx, rollout, actor="U0RM1", request=None, force_reason="test")
        rollout.pending_owner = "replica-that-died"
        session.add(rollout)
        session.commit()
    await a.runtime.ports.actuator.send(claim.actuation)  # the first send, answered 200
    return claim.key


def pending(a: Actuated) -> tuple[str | None, str | None, int]:
    with Session(a.engine) as session:
        release = get_release(VERSION, session=session)
        assert release is not None
        rollout = rollout_of(release, session=session)
        assert rollout is not None
        return rollout.pending_action, rollout.pending_key, rollout.wave_index


def warnings_in_thread(a: Actuated) -> list[str]:
    return [
        p["text"]
        for p in a.service.slack.posts()
        if "did not confirm the re-sent promote" in p.get("text", "")
    ]


async def test_a_resent_claim_that_fails_stays_pending_and_is_sent_again_with_its_key(
    actuated: Actuated, deploy: FakeDeploySystem, clock: FakeClock
) -> None:
    a = actuated
    await a.eligible(VERSION)
    key = await left_by_a_dead_replica(a)
    assert deploy.replay()[VERSION].wave == "free-10"  # the deploy system applied it
    sent = deploy.count("promote")
    # Older than any live send could be: every sweep would take it.
    clock.advance(send_deadline(a.runtime) + timedelta(seconds=1))

    # The new leader re-sends it; the deploy system is down for that send.
    deploy.fail(times=1, status=503)
    assert await recover_pending(a.runtime, taking_over=True) == ["kept pending"]
    assert deploy.keys("promote")[sent:] == [key]
    assert pending(a) == ("promote", key, 0)  # not released: still pending, same key
    await a.service.delivery.deliver_due()
    assert len(warnings_in_thread(a)) == 1
    status = await a.run("/wave", f"status {VERSION}")
    assert "the deploy system did not confirm it (1 send failed: HTTP 503" in status
    assert "sent again with the same key at" in status

    # Within its backoff the next sweep leaves it alone.
    clock.advance(seconds=5)
    assert await recover_pending(a.runtime, taking_over=False) == []
    assert deploy.count("promote") == sent + 1

    # After it, sent again (the same key) and failing again: said once, counted twice.
    deploy.fail(times=1, status=503)
    clock.advance(minutes=1)
    assert await recover_pending(a.runtime, taking_over=False) == ["kept pending"]
    await a.service.delivery.deliver_due()
    assert len(warnings_in_thread(a)) == 1
    assert "(2 sends failed" in await a.run("/wave", f"status {VERSION}")

    # The deploy system answers at last: settled as the first sender would have.
    clock.advance(minutes=5)
    assert await recover_pending(a.runtime, taking_over=False) == ["settled"]
    assert deploy.keys("promote")[sent:] == [key, key, key]
    assert pending(a) == (None, None, 1)
    assert deploy.replay()[VERSION].wave == "free-10"
