"""A real `wavegate serve` killed (kill -9, SIGTERM) while the deploy system holds a start, a
promote, a pause, a resume and a rollback: after a restart wavegate's recorded state converges
on what the deploy system received, each action keeps one idempotency key (the re-send equals
the first) and each is audited once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.actuator import FakeDeploySystem
from tests.support.serve import Served
from tests.support.signing import (
    block_action,
    interaction_body,
    signed_headers,
    slash_body,
)
from tests.support.slack import FakeSlack

API_TOKEN = "crash-api-token"
POLICY = """
version: 1
channels: {{rollouts: C0ROLLOUTS, incidents: C0INCIDENTS}}
roles: {{release-managers: [U0RM1]}}
checklist:
  - {{id: tests, title: Tests pass}}
tiers: [staging, free]
plans:
  default:
    - {{name: staging, tiers: [staging], percent: 100, observe: 1h}}
    - {{name: free, tiers: [free], percent: 100, observe: 1h}}
actuator: {{url: "{url}", secret_env: WAVEGATE_ACTUATOR_SECRET, timeout: 60s, retries: 1}}
"""
# The five releases and the action the deploy system holds for each.
HELD = {"s1": "start", "p1": "promote", "h1": "pause", "r1": "resume", "b1": "rollback"}


@pytest.fixture
async def deploy() -> AsyncIterator[FakeDeploySystem]:
    fake = await FakeDeploySystem().start()
    yield fake
    await fake.stop()


async def slash(http: aiohttp.ClientSession, served: Served, slack: FakeSlack, text: str) -> str:
    """Type `/ops …` (aliases work the same) and return the answer, in the ack or after it."""
    command, _, rest = text.partition(" ")
    key = f"k{time.monotonic_ns()}"
    body = slash_body(command, rest, response_url=slack.response_url(key))
    url = f"{served.url}/slack/events"
    async with http.post(url, data=body, headers=signed_headers(body)) as response:
        assert response.status == 200
        acked = (await response.json(content_type=None)) if await response.read() else None
    if acked and acked.get("text"):
        return str(acked["text"])
    for _ in range(200):
        if slack.responses_to(key):
            return str(slack.responses_to(key)[-1]["text"])
        await asyncio.sleep(0.05)
    return ""


async def press(
    http: aiohttp.ClientSession, served: Served, action: str, value: dict[str, Any]
) -> None:
    payload = block_action(action, json.dumps(value))
    body = interaction_body(payload)
    url = f"{served.url}/slack/events"
    async with http.post(url, data=body, headers=signed_headers(body)) as response:
        assert response.status == 200


async def rollouts(http: aiohttp.ClientSession, served: Served) -> dict[str, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with http.get(f"{served.url}/api/v1/rollouts", headers=headers) as response:
        assert response.status == 200
        return {r["release"]: r for r in (await response.json())["rollouts"]}


async def prepare(http: aiohttp.ClientSession, served: Served, slack: FakeSlack) -> None:
    """Five ready releases; four of them rolling out (one paused), with a quick deploy system."""
    for version in HELD:
        await slash(http, served, slack, f"/ready new {version}")
        assert "waived" in (await slash(http, served, slack, f"/ready waive {version} tests ok"))
    for version in ("p1", "h1", "r1", "b1"):
        assert (await slash(http, served, slack, f"/wave start {version}")).startswith("Started")
    assert (await slash(http, served, slack, "/wave pause r1 checking")).startswith("Paused")


async def hold_five(http: aiohttp.ClientSession, served: Served, deploy: FakeDeploySystem) -> None:
    """Send the five actions; return once the deploy system holds all of them."""
    before = deploy.count()
    deploy.hold_new_seconds = 300
    events = f"{served.url}/slack/events"

    async def typed(text: str) -> None:
        body = slash_body("/wave", text)
        async with http.post(events, data=body, headers=signed_headers(body)) as response:
            assert response.status == 200

    await asyncio.gather(
        typed("start s1"),
        typed("promote p1 --force crash test"),
        typed("pause h1 crash test"),
        typed("resume r1"),
        press(http, served, "wave.rollback.confirm", {"release": "b1", "reason": "crash test"}),
    )
    await deploy.wait_for(before + 5)
    pending = await rollouts(http, served)
    assert {v: pending[v]["pending_action"]["action"] for v in HELD} == HELD


async def converged(http: aiohttp.ClientSession, served: Served) -> dict[str, dict[str, Any]]:
    for _ in range(400):
        now = await rollouts(http, served)
        if all(now.get(v, {}).get("pending_action", 1) is None for v in HELD):
            return now
        await asyncio.sleep(0.1)
    raise AssertionError(f"pending actions were not recovered: {await rollouts(http, served)}")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
async def test_actions_held_at_a_crash_are_resent_with_their_key_and_settled(
    how: signal.Signals, tmp_path: Path, slack: FakeSlack, deploy: FakeDeploySystem
) -> None:
    served = Served(tmp_path, slack, POLICY.format(url=deploy.url), api_token=API_TOKEN)
    await served.start()
    async with aiohttp.ClientSession() as http:
        try:
            await prepare(http, served, slack)
            first = deploy.count()
            await hold_five(http, served, deploy)
            served.stop(how)
            await served.start()
            recorded = await converged(http, served)
        finally:
            if served.process is not None and served.process.poll() is None:
                served.stop(signal.SIGTERM)
    exposure = deploy.replay()
    for version, action in HELD.items():
        row = recorded[version]
        assert (row["state"], row["wave"]) == (exposure[version].state, exposure[version].wave)
        keys = [r.key for r in deploy.received[first:] if r.body["release"] == version]
        # Held once, re-sent once after the restart: one key per action.
        assert len(keys) == 2
        assert keys[0] == keys[1]
        assert keys[0].startswith(f"wavegate:{version}:{action}")
    assert {v: recorded[v]["state"] for v in HELD} == {
        "s1": "running",
        "p1": "running",
        "h1": "paused",
        "r1": "running",
        "b1": "rolled_back",
    }
    assert recorded["p1"]["wave"] == "free"
    for action, version in [
        ("wave.start", "s1"),
        ("wave.promote", "p1"),
        ("wave.resume", "r1"),
        ("rollback", "b1"),
    ]:
        oks = [e for e in served.audit(action) if e.subject == f"release:{version}"]
        assert [e.outcome for e in oks] == ["ok"]
    pauses = [e for e in served.audit("wave.pause") if e.subject == "release:h1"]
    assert [e.outcome for e in pauses] == ["ok"]
