"""The actuation protocol over real HTTP (signed Slack requests through the app, the signed
webhook to a fake deploy system), on SQLite and PostgreSQL: simultaneous promotes send one
webhook; promote, pause and rollback pressed at once leave the deploy system and wavegate
agreeing; a slow deploy system delays nothing else."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.jobs.waves import poll_rollout
from commands.policy import Policy
from storage.models import AuditEvent
from storage.releases import get_release
from storage.rollouts import rollout_of
from tests.support.actuation import Actuated, actuated_service
from tests.support.actuator import FakeDeploySystem
from tests.support.clock import FakeClock
from tests.support.slack import FakeSlack
from tests.support.waves import small_policy


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
    any_engine: Engine,
    policy: Policy,
    clock: FakeClock,
    slack: FakeSlack,
    deploy: FakeDeploySystem,
) -> AsyncIterator[Actuated]:
    runner, actuated = await actuated_service(any_engine, policy, clock, slack, deploy)
    yield actuated
    await actuated.service.http.close()
    await runner.cleanup()


def audited(engine: Engine, action: str) -> Counter[str]:
    with Session(engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
        return Counter(e.outcome for e in session.exec(query))


def promote_outcome(text: str) -> str:
    if text.startswith("Promoted 1.0 to wave 2 (free-10)"):
        return "promoted"
    if text.startswith("In progress: a promote of 1.0 is in progress, started by <@U0RM1>"):
        return "in progress"
    if "1.0 changed just now: it is at wave 2 (free-10) (running)" in text:
        return "already moved"
    if text.startswith("Refused: cannot promote 1.0 from wave 2 (free-10)"):
        return "already moved"
    return text


@pytest.mark.parametrize("racers", [10, 20])
async def test_simultaneous_promotes_send_exactly_one_webhook(
    actuated: Actuated, deploy: FakeDeploySystem, racers: int
) -> None:
    await actuated.eligible("1.0")
    deploy.stall_seconds = 0.2  # the winner's call is in flight while the others arrive
    typed = await asyncio.gather(*(actuated.type("/wave", "promote 1.0") for _ in range(racers)))
    assert all(acked == "" for acked, _ in typed)  # acknowledged at once, answered later
    replies = await asyncio.gather(*(actuated.answer(key) for _, key in typed))
    outcomes = Counter(promote_outcome(text) for text in replies)
    assert outcomes["promoted"] == 1
    assert set(outcomes) <= {"promoted", "in progress", "already moved"}, outcomes
    assert deploy.count("promote") == 1
    assert audited(actuated.engine, "wave.promote")["ok"] == 1
    assert audited(actuated.engine, "wave.promote")["refused"] == racers - 1
    assert (await actuated.rollouts())["1.0"]["wave"] == "free-10"


async def test_promote_pause_and_rollback_at_once_leave_both_systems_agreeing(
    actuated: Actuated, deploy: FakeDeploySystem
) -> None:
    shuffle = random.Random(9)
    trials = 6
    for trial in range(trials):
        version = f"t{trial}"
        await actuated.eligible(version)
        deploy.stall_seconds = shuffle.choice([0.0, 0.02, 0.1])

        async def promote(v: str = version) -> str:
            return (await actuated.type("/wave", f"promote {v}"))[1]

        async def pause(v: str = version) -> str:
            return (await actuated.type("/wave", f"pause {v} trial"))[1]

        async def confirm(v: str = version) -> str:
            return await actuated.press("wave.rollback.confirm", {"release": v, "reason": "trial"})

        async def later(delay: float, press: Callable[[], Awaitable[str]]) -> str:
            await asyncio.sleep(delay)
            return await press()

        presses: list[Callable[[], Awaitable[str]]] = [promote, pause, confirm]
        shuffle.shuffle(presses)
        keys = await asyncio.gather(*(later(shuffle.uniform(0, 0.05), p) for p in presses))
        replies = await asyncio.gather(*(actuated.answer(key) for key in keys))
        assert all(reply for reply in replies)  # every press is answered
    await wait_settled(actuated)
    recorded = await actuated.rollouts()
    exposure = deploy.replay()
    for trial in range(trials):
        version = f"t{trial}"
        row, seen = recorded[version], exposure[version]
        assert row["state"] == seen.state, (version, row, seen, deploy.actions())
        if row["state"] in ("running", "paused"):
            assert row["wave"] == seen.wave
    keys = deploy.keys()
    assert len(keys) == len(set(keys))  # no failures, so no retries: every key once


async def wait_settled(actuated: Actuated) -> None:
    for _ in range(400):
        rows = await actuated.rollouts()
        if all(r["pending_action"] is None for r in rows.values()):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("an action stayed pending")


async def test_a_slow_deploy_system_delays_neither_status_health_nor_other_polls(
    actuated: Actuated, deploy: FakeDeploySystem
) -> None:
    await actuated.eligible("1.0")
    await actuated.eligible("2.0")
    deploy.stall_seconds = 6
    before = deploy.count()
    acked, promote = await actuated.type("/wave", "promote 1.0")
    assert acked == ""
    await deploy.wait_for(before + 1)
    http, url = actuated.service.http, actuated.service.url
    # While the deploy system holds the promote:
    async with http.get(f"{url}/healthz") as response:
        assert response.status == 200
    status = await actuated.run("/wave", "status 1.0")
    assert "a promote to wave 2 (free-10) is in progress" in status
    pending = (await actuated.rollouts())["1.0"]["pending_action"]
    assert pending["action"] == "promote"
    assert pending["actor"] == "U0RM1"
    assert pending["idempotency_key"] == deploy.received[-1].key
    refused = await actuated.run("/wave", "pause 1.0 now")
    assert refused.startswith("In progress: a promote of 1.0 is in progress")
    with Session(actuated.engine) as session:
        release = get_release("2.0", session=session)
        second = rollout_of(release, session=session) if release is not None else None
        assert second is not None
        assert second.id is not None
    # Another rollout's poll goes on meanwhile.
    actuated.clock.advance(timedelta(seconds=1))
    assert await poll_rollout(actuated.runtime, second.id) is not None
    assert actuated.service.slack.responses_to(promote) == []  # the promote is still out
    assert (await actuated.answer(promote)).startswith("Promoted 1.0 to wave 2 (free-10)")
    assert (await actuated.rollouts())["1.0"]["pending_action"] is None
