"""`wavegate serve` in Socket Mode as a real process, against a fake Socket Mode server."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlmodel import Session

from storage.db import make_engine
from storage.incidents import timeline_refs
from tests.support.incidents import FakeSlackWithHistory, declare_form_submission
from tests.support.serve import free_port, serve_env
from tests.support.signing import block_action, signed_headers, slash_body
from tests.support.socket_mode import APP_TOKEN, SocketModeServer

ROOT = Path(__file__).resolve().parents[3]
MANAGER = "U0RM1"
COMMANDER = "U0IC1"
VERSION = "2026.12.01-1"


@dataclass
class Served:
    url: str
    database_url: str
    policy: Path
    log: Path


def policy_file(tmp_path: Path) -> Path:
    """The built-in blueprint with channels and role members, as a team's own policy names."""
    data = yaml.safe_load((ROOT / "commands" / "blueprint.yml").read_text(encoding="utf-8"))
    data["channels"] = {**data["channels"], "rollouts": "C0ROLLOUTS", "incidents": "C0INCIDENTS"}
    data["roles"] = {"release-managers": [MANAGER], "incident-commanders": [COMMANDER]}
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackWithHistory]:
    fake = await FakeSlackWithHistory().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def socket_server(slack: FakeSlackWithHistory) -> AsyncIterator[SocketModeServer]:
    server = await SocketModeServer().start()
    server.attach(slack)
    yield server
    await server.stop()


def output(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")


async def wait_started(
    process: asyncio.subprocess.Process, socket_server: SocketModeServer, url: str, log: Path
) -> None:
    """Until the process has connected over the socket and answers /healthz (30 s at most)."""
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                pytest.fail(f"wavegate serve exited:\n{output(log)}")
            try:
                await socket_server.wait_connections(1, within=0.2)
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except (AssertionError, aiohttp.ClientError):
                await asyncio.sleep(0.1)
    pytest.fail(f"wavegate serve did not connect within 30 s:\n{output(log)}")


@pytest.fixture
async def served(
    slack: FakeSlackWithHistory, socket_server: SocketModeServer, tmp_path: Path
) -> AsyncIterator[Served]:
    port = free_port()
    database_url = f"sqlite:///{tmp_path / 'serve.db'}"
    policy = policy_file(tmp_path)
    env = serve_env(
        slack,
        database=database_url,
        port=port,
        SLACK_APP_TOKEN=APP_TOKEN,
        WAVEGATE_POLICY=str(policy),
    )
    del env["SLACK_SIGNING_SECRET"]  # Socket Mode: an app token and no signing secret at all
    log = tmp_path / "serve.log"
    # The fakes live on this event loop, so the process is awaited, never waited on blocking.
    with log.open("wb") as out:
        upgrade = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "db", "upgrade", env=env, stdout=out, stderr=out
        )
        assert await asyncio.wait_for(upgrade.wait(), timeout=60) == 0, output(log)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve", env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_started(process, socket_server, url, log)
        yield Served(url, database_url, policy, log)
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=15)


def buttons(blocks: list[dict[str, Any]]) -> dict[str, str]:
    """action_id → value of every button in a message's blocks."""
    found: dict[str, str] = {}
    for block in blocks:
        elements = [*block.get("elements", []), block.get("accessory") or {}]
        for element in elements:
            if element.get("type") == "button":
                found[element["action_id"]] = element.get("value", "")
    return found


def pinned_entries(database_url: str) -> list[str]:
    """The pins on incident #1's timeline, read from the served process's database."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return [entry.text for entry in timeline_refs(1, "message:", session=session)]
    finally:
        engine.dispose()


async def test_command_button_form_and_event_work_over_the_socket_and_survive_reconnects(
    served: Served, slack: FakeSlackWithHistory, socket_server: SocketModeServer
) -> None:
    server = socket_server
    opened = slack.calls_to("apps.connections.open")
    assert opened
    assert opened[0].token == APP_TOKEN

    # A slash command answered inside the ack: the reply is the ack's payload.
    envelope = await server.slash_command("/ready", f"new {VERSION}")
    ack = await server.ack(envelope)
    assert ack.connection == 1
    assert ack.payload is not None
    assert f"Registered release candidate {VERSION}" in ack.payload["text"]

    ack = await server.ack(await server.slash_command("/ready"))
    assert ack.payload is not None
    assert ack.payload["text"].startswith(f"Readiness of {VERSION} (candidate): 0 of 6 done.")
    assert ack.payload["blocks"][0]["type"] == "header"

    for item in yaml.safe_load(served.policy.read_text(encoding="utf-8"))["checklist"]:
        envelope = await server.slash_command(
            "/ready", f"waive {VERSION} {item['id']} proven elsewhere"
        )
        assert (await server.ack(envelope)).payload is not None

    # A command answered after the ack: an empty ack, then a POST to the response URL.
    envelope = await server.slash_command(
        "/wave", f"start {VERSION}", response_url=slack.response_url("start")
    )
    assert (await server.ack(envelope)).payload is None
    started = await slack.reply(key="start")
    assert started["text"].startswith(f"Started {VERSION}"), started

    # The status message the bot posted carries a Pause button: press it over the socket.
    await slack.wait_for(
        lambda: any("wave.pause" in buttons(p.get("blocks", [])) for p in slack.posts())
    )
    status = next(p for p in slack.posts() if "wave.pause" in buttons(p.get("blocks", [])))
    press = block_action(
        "wave.pause",
        buttons(status["blocks"])["wave.pause"],
        user_id=MANAGER,
        response_url=slack.response_url("pause"),
    )
    assert (await server.ack(await server.interactive(press))).payload is None
    paused = await slack.reply(key="pause")
    assert paused["text"] == f"Paused {VERSION}."

    # The declare form: acknowledged (the modal closes), then the incident channel is made.
    form = declare_form_submission(
        user_id=COMMANDER, incident_class="provider-outage", summary="completions time out"
    )
    assert (await server.ack(await server.interactive(form))).payload is None
    await slack.wait_for(lambda: bool(slack.calls_to("conversations.create")))
    channel = next(iter(slack.channel_names))
    await slack.wait_for(lambda: any(p.get("channel") == COMMANDER for p in slack.posts()))
    told = next(p for p in slack.posts() if p.get("channel") == COMMANDER)
    assert told["text"].startswith("Declared incident #1")

    # An event: a message pinned in the incident channel joins its timeline (after the ack).
    pin = {
        "type": "pin_added",
        "user": COMMANDER,
        "channel_id": channel,
        "item": {
            "type": "message",
            "channel": channel,
            "created_by": COMMANDER,
            "message": {"type": "message", "ts": "1700000500.000100", "text": "failing over"},
        },
        "event_ts": "1700000501.000100",
    }
    assert (await server.ack(await server.event(pin))).payload is None
    for _ in range(200):
        if pinned_entries(served.database_url):
            break
        await asyncio.sleep(0.025)
    assert pinned_entries(served.database_url) == ["📌 failing over"]

    # The server drops the socket: the bot asks for a new URL, reconnects, and commands work.
    await server.drop()
    await server.wait_connections(2)
    ack = await server.ack(await server.slash_command("/ready", VERSION))
    assert ack.connection == 2
    assert ack.payload is not None
    assert ack.payload["text"].startswith(f"Readiness of {VERSION}")

    # Slack's own "please reconnect" message: the same, over a third connection.
    await server.disconnect()
    await server.wait_connections(3)
    ack = await server.ack(await server.slash_command("/ready", VERSION))
    assert ack.connection == 3
    assert len(slack.calls_to("apps.connections.open")) >= 3


async def test_http_slack_requests_are_refused_in_socket_mode(served: Served) -> None:
    events = f"{served.url}/slack/events"
    body = slash_body("/ready", f"new {VERSION}")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            events, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        ) as response:
            assert response.status == 401
        # Signed with a guess: there is no secret to check it against, so it is refused too.
        async with http.post(events, data=body, headers=signed_headers(body)) as response:
            assert response.status == 401
        async with http.get(f"{served.url}/readyz") as response:
            assert response.status == 200, await response.text()
