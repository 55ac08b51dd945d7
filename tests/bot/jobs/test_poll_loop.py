"""The poll loop keeps the policy's own clock: a 1 s metric is read every second, errors are
retried at `error_retry`, so an outage is called blind after ~consecutive_error_limit x
error_retry. Driven by hand on a fake clock: each step says how long to sleep, we advance."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.jobs.waves import LOOK_EVERY, Poller, poll_loop
from bot.leader import Leadership
from bot.runtime import Runtime
from bot.settings import Settings
from bot.wiring import wire
from commands.core import system_clock
from commands.policy_file import parse_policy
from commands.ports import LocalActuator
from storage.models import PauseKind, Rollout, RolloutState
from tests.conftest import run
from tests.support.clock import FakeClock
from tests.support.prometheus import FakePrometheus, http_error, value
from tests.support.waves import ready_release

QUERY = 'sum(rate(ok_total{release="1.0"}[1s]))'
POLICY = """
version: 1
channels: {rollouts: C0ROLLOUTS, incidents: C0INCIDENTS}
roles: {release-managers: [U0RM1], incident-commanders: [U0IC1]}
checklist:
  - {id: tests, title: Tests pass}
tiers: [staging]
plans:
  default:
    - {name: staging, tiers: [staging], percent: 100, observe: 10m}
sources:
  prom: {type: prometheus, url: "PROM", timeout: 1s}
metrics:
  - id: ok_rate
    source: prom
    query: 'sum(rate(ok_total{release="{release}"}[{window}]))'
    success: "> 0"
    interval: 1s
"""


async def started(engine: Engine, prom: FakePrometheus) -> tuple[Runtime, FakeClock]:
    clock = FakeClock()
    policy = parse_policy(POLICY.replace("PROM", prom.url))
    runtime = Runtime(settings=Settings(), engine=engine, policy=policy, clock=clock)
    runtime.ports.actuator = LocalActuator()
    wire(runtime)
    with Session(engine, expire_on_commit=False) as session:
        await ready_release(runtime.context(session), "1.0")
        reply = await run(runtime.context(session), "/wave start 1.0")
        assert not reply.error, reply.text
        session.commit()
    return runtime, clock


async def drive(poller: Poller, clock: FakeClock, seconds: float) -> list[timedelta]:
    """Run the loop's steps for `seconds` of fake time; the sleeps it asked for."""
    waits = []
    end = clock() + timedelta(seconds=seconds)
    while clock() < end:
        wait = await poller.step()
        waits.append(wait)
        clock.advance(max(wait, timedelta(milliseconds=1)))
    return waits


def rollout(engine: Engine) -> Rollout:
    with Session(engine) as session:
        return session.exec(select(Rollout)).one()


async def test_a_one_second_metric_is_read_every_second(
    engine: Engine, prom: FakePrometheus
) -> None:
    prom.program(QUERY, value(5))
    runtime, clock = await started(engine, prom)
    waits = await drive(Poller(runtime), clock, 30)
    reads = len(prom.calls_for(QUERY))
    assert 28 <= reads <= 31, reads  # not every 5 s (6 reads), not every 2 s (15)
    assert max(waits) <= LOOK_EVERY
    assert rollout(engine).state == RolloutState.running


async def test_a_prometheus_outage_is_called_blind_after_the_error_limit_times_error_retry(
    engine: Engine, prom: FakePrometheus
) -> None:
    prom.program(QUERY, value(5), value(5), value(5), http_error(503))
    runtime, clock = await started(engine, prom)
    poller = Poller(runtime)
    outage_from = clock() + timedelta(seconds=2)
    for _ in range(200):
        wait = await poller.step()
        if rollout(engine).state != RolloutState.running:
            break
        clock.advance(max(wait, timedelta(milliseconds=1)))
    paused = rollout(engine)
    assert paused.pause_kind == PauseKind.blind
    # consecutive_error_limit 4 (default) x error_retry min(10 s, interval 1 s): the fifth
    # failed read, ~4-5 s into the outage; the old fixed 5 s tick took ~25 s.
    took = clock() - outage_from
    assert timedelta(seconds=3) <= took <= timedelta(seconds=7), took


async def test_the_loop_polls_only_while_this_replica_leads(
    engine: Engine, prom: FakePrometheus
) -> None:
    prom.program(QUERY, value(5))
    runtime, _ = await started(engine, prom)
    runtime.clock = system_clock  # a short real run of the loop itself
    rival = Leadership(engine, holder="rival", ttl=timedelta(seconds=60))
    assert await rival.renew()
    runtime.leadership = Leadership(engine, holder="me", ttl=timedelta(seconds=60))
    assert not await runtime.leadership.renew()
    loop = asyncio.create_task(poll_loop(runtime))
    try:
        await asyncio.sleep(0.5)
        assert prom.calls_for(QUERY) == []  # a follower reads nothing
        await rival.resign()
        assert await runtime.leadership.renew()
        for _ in range(60):
            if prom.calls_for(QUERY):
                break
            await asyncio.sleep(0.05)
        assert prom.calls_for(QUERY)  # within a LOOK_EVERY of leading
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
