"""Twenty people press Promote at once: exactly one promotion (SQLite and PostgreSQL), and a
stale button changes nothing."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from commands.core import Context, Request
from commands.policy import Policy
from commands.router import dispatch
from commands.wave.buttons import press
from storage.models import AuditEvent, Rollout
from tests.conftest import MANAGER
from tests.support.clock import FakeClock
from tests.support.waves import observe, rollout, small_policy, start

RACERS = 20


@pytest.fixture
def policy() -> Policy:
    return small_policy()


async def eligible(engine: Engine, policy: Policy, clock: FakeClock) -> None:
    """Release 1.0 started and observed through its 3 s window with healthy metrics."""
    with Session(engine, expire_on_commit=False) as session:
        ctx = Context(session=session, policy=policy, clock=clock)
        await start(ctx, "1.0")
        await observe(ctx, "1.0", 3)
        current = rollout(ctx, "1.0")
        assert (current.verdict, current.wave_index, current.version) == ("successful", 0, 1)


def race(engine: Engine, policy: Policy, clock: FakeClock, *, button: bool) -> list[str]:
    """Every racer in its own thread with its own Session, released together by a barrier:
    typing `/wave promote 1.0`, or pressing the same "Promote wave 1" button."""
    barrier = threading.Barrier(RACERS)
    replies: list[str] = []
    lock = threading.Lock()

    async def attempt(ctx: Context) -> str:
        if button:
            request = Request(command="wave.promote", text="", user_id=MANAGER)
            value = json.dumps({"release": "1.0", "wave": 0})
            return (await press(request, ctx, "wave.promote", value)).text
        request = Request(command="/wave", text="promote 1.0", user_id=MANAGER)
        return (await dispatch(request, ctx)).text

    def racer() -> None:
        with Session(engine, expire_on_commit=False) as session:
            ctx = Context(session=session, policy=policy, clock=clock)
            barrier.wait()
            text = asyncio.run(attempt(ctx))
        with lock:
            replies.append(text)

    threads = [threading.Thread(target=racer) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return replies


def outcome(text: str) -> str:
    if text.startswith("Promoted 1.0 to wave 2"):
        return "promoted"
    if "1.0 is already at wave 2 (free-10) (running); nothing changed" in text:
        return "lost the race (already at wave 2)"
    if "1.0 changed just now: it is at wave 2 (free-10) (running); nothing changed" in text:
        return "lost the race (already at wave 2)"
    if text.startswith("In progress: a promote of 1.0 is in progress, started by <@U0RM1>"):
        return "while it was in progress"
    if text.startswith("Refused: cannot promote 1.0 from wave 2 (free-10)"):
        return "came after it (wave 2 not observed yet)"
    return text


def assert_one_promotion(engine: Engine) -> None:
    with Session(engine) as session:
        current = session.exec(select(Rollout)).one()
        assert (current.wave_index, current.version) == (1, 2)
        events = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "wave.promote")
            .order_by(col(AuditEvent.id))
        ).all()
    assert Counter(e.outcome for e in events) == {"ok": 1, "refused": RACERS - 1}


@pytest.mark.parametrize("button", [True, False], ids=["button", "typed"])
async def test_twenty_simultaneous_promotes_advance_exactly_one_wave(
    any_engine: Engine, policy: Policy, clock: FakeClock, button: bool
) -> None:
    await eligible(any_engine, policy, clock)
    replies = await asyncio.to_thread(race, any_engine, policy, clock, button=button)
    outcomes = Counter(outcome(text) for text in replies)
    print(f"\n{any_engine.dialect.name} {'button' if button else 'typed'}: {dict(outcomes)}")
    assert outcomes["promoted"] == 1
    if button:
        # The button names the wave it was posted for: every other press is stale, or came
        # while the winner's promote was in progress.
        assert set(outcomes) <= {
            "promoted",
            "lost the race (already at wave 2)",
            "while it was in progress",
        }
    else:
        assert set(outcomes) <= {
            "promoted",
            "lost the race (already at wave 2)",
            "while it was in progress",
            "came after it (wave 2 not observed yet)",
        }
    assert sum(outcomes.values()) == RACERS
    assert_one_promotion(any_engine)


async def test_a_stale_promote_button_says_where_the_rollout_is_and_does_nothing(
    ctx: Context,
) -> None:
    await start(ctx, "1.0")
    await observe(ctx, "1.0", 3)
    button = json.dumps({"release": "1.0", "wave": 0})
    request = Request(command="wave.promote", text="", user_id=MANAGER)
    first = await press(request, ctx, "wave.promote", button)
    assert first.text == "Promoted 1.0 to wave 2 (free-10)."
    await observe(ctx, "1.0", 3)  # free-10 auto-promotes: now at wave 3
    assert rollout(ctx, "1.0").wave_index == 2
    version = rollout(ctx, "1.0").version
    stale = await press(request, ctx, "wave.promote", json.dumps({"release": "1.0", "wave": 1}))
    assert stale.error
    assert stale.text == (
        "Conflict: 1.0 is already at wave 3 (pro) (running); nothing changed. The status "
        "message now shows where it is and what can be done."
    )
    current = rollout(ctx, "1.0")
    assert (current.wave_index, current.version) == (2, version)
