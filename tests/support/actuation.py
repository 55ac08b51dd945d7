"""The service with a webhook actuator pointed at the fake deploy system, and helpers that drive
it over signed HTTP (no tests here): shared by the actuation tests and tests/perf/promote.py."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.actuator import WebhookActuator
from bot.runtime import Runtime
from bot.sources.demo import DemoSource
from commands.core import Context
from commands.policy import Actuator, Policy
from commands.policy import DemoSource as DemoConfig
from tests.conftest import Service, service_settings, start_service
from tests.support.actuator import SECRET, FakeDeploySystem
from tests.support.clock import FakeClock
from tests.support.signing import block_action, interaction_body, signed_headers, slash_body
from tests.support.slack import FakeSlack
from tests.support.waves import observe

_keys = itertools.count(1)


def with_actuator(policy: Policy, deploy: FakeDeploySystem, *, retries: int = 0) -> Policy:
    config = Actuator.model_validate({"url": deploy.url, "retries": retries, "timeout": "30s"})
    return policy.model_copy(update={"actuator": config})


@dataclass
class Actuated:
    """The real app on loopback, its actuator the signed webhook to the fake deploy system."""

    service: Service
    deploy: FakeDeploySystem
    engine: Engine
    policy: Policy
    clock: FakeClock

    @property
    def runtime(self) -> Runtime:
        return self.service.runtime

    async def answer(self, key: str, *, attempts: int = 1200) -> str:
        """The reply posted to `response_url` key `key` (commands answered after the ack)."""
        for _ in range(attempts):
            got = self.service.slack.responses_to(key)
            if got:
                return str(got[-1]["text"])
            await asyncio.sleep(0.025)
        raise AssertionError(f"no reply for {key}")

    async def type(self, command: str, text: str, *, user: str = "U0RM1") -> tuple[str, str]:
        """Type a command; returns (the ack's text, the response_url key of the later reply)."""
        key = f"r{next(_keys)}"
        body = slash_body(
            command, text, user_id=user, response_url=self.service.slack.response_url(key)
        )
        url = f"{self.service.url}/slack/events"
        async with self.service.http.post(url, data=body, headers=signed_headers(body)) as resp:
            assert resp.status == 200
            raw = await resp.read()
        acked = json.loads(raw) if raw else {}
        return str(acked.get("text") or ""), key

    async def run(self, command: str, text: str) -> str:
        """Type a command and wait for its reply, in the ack or after it."""
        acked, key = await self.type(command, text)
        return acked or await self.answer(key)

    async def press(self, action: str, value: dict[str, Any], *, user: str = "U0RM1") -> str:
        """Press a button; returns the response_url key of its reply."""
        key = f"r{next(_keys)}"
        payload = block_action(
            action,
            json.dumps(value),
            user_id=user,
            response_url=self.service.slack.response_url(key),
        )
        body = interaction_body(payload)
        url = f"{self.service.url}/slack/events"
        async with self.service.http.post(url, data=body, headers=signed_headers(body)) as resp:
            assert resp.status == 200
        return key

    async def rollouts(self) -> dict[str, dict[str, Any]]:
        headers = {"Authorization": "Bearer test-api-token"}
        url = f"{self.service.url}/api/v1/rollouts"
        async with self.service.http.get(url, headers=headers) as resp:
            assert resp.status == 200
            return {r["release"]: r for r in (await resp.json())["rollouts"]}

    async def eligible(self, version: str) -> None:
        """Register, waive, start (through the deploy system) and observe the first wave's window
        with healthy demo metrics, so `/wave promote` passes the gate."""
        assert "Registered" in await self.run("/ready", f"new {version}")
        for item in self.policy.checklist:
            assert "waived" in await self.run("/ready", f"waive {version} {item.id} ok")
        started = await self.run("/wave", f"start {version}")
        assert started.startswith("Started"), started
        with Session(self.engine, expire_on_commit=False) as session:
            await observe(
                Context(session=session, policy=self.policy, clock=self.clock), version, 3
            )


async def actuated_service(
    engine: Engine, policy: Policy, clock: FakeClock, slack: FakeSlack, deploy: FakeDeploySystem
) -> tuple[Any, Actuated]:
    policy = with_actuator(policy, deploy)
    url = str(engine.url.render_as_string(hide_password=False))
    runtime = Runtime(
        settings=service_settings(slack, url), engine=engine, policy=policy, clock=clock
    )
    assert policy.actuator is not None
    runtime.ports.actuator = WebhookActuator(policy.actuator, SECRET, backoff=0)
    runtime.ports.sources = {"demo": DemoSource(DemoConfig(type="demo"))}
    runner, service = await start_service(runtime, slack)
    return runner, Actuated(service, deploy, engine, policy, clock)
