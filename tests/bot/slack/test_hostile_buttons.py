"""Buttons pressed with garbage: signed block_actions through the real HTTP app, answered with a
clear ephemeral reply at the response URL, and nothing changes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlmodel import Session, select

from storage.models import OutboxPost, Rollout, RolloutState
from tests.conftest import Service
from tests.support.clock import FakeClock
from tests.support.incidents import FakeSlackWithHistory, running_rollout
from tests.support.signing import block_action, interaction_body

DEEP = "[" * 900 + "]" * 900


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackWithHistory]:
    fake = await FakeSlackWithHistory().start()
    yield fake
    await fake.stop()


@pytest.fixture
def rollout(service: Service, clock: FakeClock) -> Rollout:
    with Session(service.runtime.engine, expire_on_commit=False) as session:
        return running_rollout(session, "1.0.0", at=clock())


def state(service: Service) -> tuple[Any, ...]:
    with Session(service.runtime.engine) as session:
        rollouts = [(r.state, r.wave_index) for r in session.exec(select(Rollout)).all()]
        posts = len(session.exec(select(OutboxPost)).all())
    return tuple(rollouts), posts


async def press(service: Service, payload: dict[str, Any], key: str) -> dict[str, Any]:
    slack = service.slack
    assert isinstance(slack, FakeSlackWithHistory)
    response = await service.post_signed(interaction_body(payload))
    assert response.status == 200
    return await slack.reply(key=key)


WAVE_VALUES = [
    ("wave.promote", ""),
    ("wave.promote", "not json"),
    ("wave.promote", "[1, 2]"),
    ("wave.promote", "null"),
    ("wave.promote", DEEP),
    ("wave.promote", '{"release": 5, "wave": 0}'),
    ("wave.promote", '{"release": "1.0.0", "wave": "0"}'),
    ("wave.promote", '{"release": "1.0.0", "wave": true}'),
    ("wave.promote", '{"release": "1.0.0", "wave": 99999999999999999999999}'),
    ("wave.promote", '{"release": "1.0.0", "wave": -1}'),
    ("wave.pause", '{"release": "<!here> no such"}'),
    ("wave.retry", '{"action_id": "wave.retry", "value": {}}'),
    ("wave.retry", '{"action_id": "wave.pause", "value": "x"}'),
    ("wave.rollback.confirm", '{"release": ["1.0.0"]}'),
    ("incident.step.tick.1", '{"incident": 100000000000000000000000000000, "step": 1}'),
    ("incident.step.tick.1", '{"incident": 1, "step": "x"}'),
    ("incident.step.tick.1", '{"incident": true, "step": 1}'),
    ("incident.step.tick.1", DEEP),
    ("incident.rollout.resume.1", '{"incident": 1, "rollout": -1}'),
    ("incident.rollout.resume.1", "[]"),
]


@pytest.mark.parametrize(("action_id", "value"), WAVE_VALUES)
async def test_a_button_with_a_malformed_value_gets_a_clear_reply_and_changes_nothing(
    service: Service, rollout: Rollout, action_id: str, value: str
) -> None:
    before = state(service)
    payload = block_action(action_id, value, response_url=service.slack.response_url("b"))
    reply = await press(service, payload, "b")
    assert reply["response_type"] == "ephemeral"
    assert reply["replace_original"] is False
    text = reply["text"]
    assert any(
        words in text for words in ("readable value", "does not say", "no rollout of", "no release")
    ), text
    assert "<!here" not in text
    assert state(service) == before
    assert service.slack.calls_to("chat.postMessage") == []


@pytest.mark.parametrize(
    "change",
    [
        {"user": None},
        {"user": "U0RM1"},
        {"user": {"name": "no id"}},
        {"channel": "C0ROLLOUTS"},
        {"actions": [{"action_id": "wave.promote", "type": "button"}]},
        {"actions": [{"action_id": "wave.promote", "value": 7}]},
        {"actions": [{"action_id": "wave.promote", "value": None}]},
    ],
)
async def test_odd_payload_shapes_get_a_reply_not_a_crash(
    service: Service, rollout: Rollout, change: dict[str, Any]
) -> None:
    before = state(service)
    value = json.dumps({"release": "1.0.0", "wave": 0})
    payload = {
        **block_action("wave.promote", value, response_url=service.slack.response_url("o")),
        **change,
    }
    reply = await press(service, payload, "o")
    assert reply["response_type"] == "ephemeral"
    # No user: nobody to act as. Otherwise the press is read as far as it goes (here the gate
    # refuses a promote of a wave just started).
    expected = "nothing changed" if "user" in change else "Refused"
    assert expected in reply["text"] or "readable value" in reply["text"], reply["text"]
    assert state(service) == before
    assert rollout.state == RolloutState.running
