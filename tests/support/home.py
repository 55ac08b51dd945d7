"""A scene for the App Home tests (no tests here): three rollouts, an incident, a rollback asked
for and a candidate with an item owned by the developer."""

from __future__ import annotations

from datetime import timedelta

from commands.core import Context
from commands.policy import Policy
from commands.ports import LocalActuator
from storage.models import Incident
from storage.rollouts import set_verdict
from tests.conftest import COMMANDER, DEVELOPER, run
from tests.support.clock import FakeClock
from tests.support.waves import rollout, start


def with_owner(policy: Policy) -> Policy:
    """The built-in checklist, with the developer owning the load test."""
    items = [
        item.model_copy(update={"owner": DEVELOPER}) if item.id == "concurrency" else item
        for item in policy.checklist
    ]
    return policy.model_copy(update={"checklist": items})


async def release_manager_scene(ctx: Context, clock: FakeClock) -> None:
    """1.0 passed its staging window (successful), 2.0 paused by hand with a rollback asked for,
    3.0 just started; incident #1 led by the commander; 4.0 a candidate."""
    ctx.ports.actuator = LocalActuator()
    await start(ctx, "1.0")
    await start(ctx, "2.0")
    clock.advance(hours=2, minutes=5)
    set_verdict(rollout(ctx, "1.0"), "successful", session=ctx.session)
    paused = await run(ctx, "/wave pause 2.0 latency looks odd")
    assert not paused.error, paused.text
    asked = await run(ctx, "/rollback 2.0 customers see 502s", user=COMMANDER)
    assert not asked.error, asked.text
    await start(ctx, "3.0")
    now = clock()
    ctx.session.add(
        Incident(
            incident_class="sandbox-instability",
            severity=3,
            summary="sandboxes restart under load",
            commander=COMMANDER,
            channel="C0INC0001",
            channel_name="inc-sandboxes-restart",
            declared_by=COMMANDER,
            declared_at=now - timedelta(minutes=20),
            last_update_at=now,
        )
    )
    await run(ctx, "/ready new 4.0")
    ctx.session.flush()
