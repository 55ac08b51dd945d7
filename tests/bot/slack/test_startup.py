"""`wavegate serve` starting as a real process: tokens checked with Slack first (a refusal stops
it with one line), no Bolt warnings, the policy's gaps named, "serving" logged once it serves."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.bot.slack.test_socket_mode import policy_file
from tests.support.serve import free_port, serve_env
from tests.support.slack import FakeSlack
from tests.support.socket_mode import APP_TOKEN, SocketModeServer


def startup_env(slack: FakeSlack, tmp_path: Path, **extra: str) -> dict[str, str]:
    """`wavegate serve`'s environment on a database of its own in `tmp_path`."""
    env = serve_env(slack, database=f"sqlite:///{tmp_path / 'serve.db'}", port=free_port())
    return {**env, **extra}


async def wavegate(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def upgraded(env: dict[str, str]) -> None:
    process = await wavegate(env, "db", "upgrade")
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, out.decode()


async def refused(env: dict[str, str]) -> tuple[int, str]:
    """Run `serve` to its end (it must end by itself); its exit code and output."""
    await upgraded(env)
    process = await wavegate(env, "serve")
    out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


async def test_a_refused_bot_token_stops_serve_with_one_line(
    slack: FakeSlack, tmp_path: Path
) -> None:
    code, out = await refused(startup_env(slack, tmp_path, SLACK_BOT_TOKEN="xoxb-revoked"))
    assert code == 2
    assert out.strip() == "wavegate: SLACK_BOT_TOKEN: Slack refused it (invalid_auth)"
    assert [call.token for call in slack.calls_to("auth.test")] == ["xoxb-revoked"]


async def test_a_refused_app_token_stops_serve_instead_of_retrying_forever(
    slack: FakeSlack, tmp_path: Path
) -> None:
    # No Socket Mode server is attached: the fake Slack refuses every app token.
    env = startup_env(slack, tmp_path, SLACK_APP_TOKEN="xapp-revoked")
    code, out = await refused(env)
    assert code == 2
    assert out.strip().splitlines()[-1] == (
        "wavegate: SLACK_APP_TOKEN: Slack refused it (invalid_auth)"
    )
    assert "Traceback" not in out
    assert len(slack.calls_to("apps.connections.open")) == 1


async def read_until(process: asyncio.subprocess.Process, needle: str) -> str:
    """Output lines until one contains `needle` (30 s at most)."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        if not line:
            pytest.fail("serve exited:\n" + "".join(seen))
        seen.append(line.decode())
        if needle in seen[-1]:
            return "".join(seen)
    pytest.fail("serve did not log " + needle + ":\n" + "".join(seen))


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    await asyncio.wait_for(process.communicate(), timeout=15)


async def test_serve_with_the_builtin_policy_warns_of_its_gaps_and_nothing_else(
    slack: FakeSlack, tmp_path: Path
) -> None:
    env = startup_env(slack, tmp_path)
    await upgraded(env)
    process = await wavegate(env, "serve")
    try:
        out = await read_until(process, "wavegate serving on port")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{env['PORT']}/healthz") as response,
        ):
            assert response.status == 200
    finally:
        await stop(process)
    assert "no channels are set (channels.rollouts and channels.incidents" in out
    assert "no one holds a role" in out
    assert "(HTTP)" in out
    assert "token will be unused" not in out
    assert "WARNING:slack_bolt" not in out
    warnings = [line for line in out.splitlines() if "WARNING" in line or "warning" in line]
    # The two start-up warnings are wavegate's own; nothing is said by Bolt or slack_sdk (a
    # loaded machine may add unrelated notices, such as a scheduler running a job late).
    assert len([line for line in warnings if "no channels are set" in line]) == 1, out
    assert len([line for line in warnings if "no one holds a role" in line]) == 1, out
    assert not [line for line in warnings if "slack_bolt" in line or "slack_sdk" in line], out


async def test_socket_mode_logs_serving_after_the_socket_connects(
    slack: FakeSlack, tmp_path: Path
) -> None:
    server = await SocketModeServer().start()
    server.attach(slack)
    env = startup_env(
        slack, tmp_path, SLACK_APP_TOKEN=APP_TOKEN, WAVEGATE_POLICY=str(policy_file(tmp_path))
    )
    del env["SLACK_SIGNING_SECRET"]
    await upgraded(env)
    process = await wavegate(env, "serve")
    try:
        out = await read_until(process, "wavegate serving on port")
    finally:
        await stop(process)
        await server.stop()
    assert out.index("connected to Slack in Socket Mode") < out.index("wavegate serving on port")
    assert "(Socket Mode)" in out
    assert "no one holds a role" not in out
    assert "no channels are set" not in out
    assert "token will be unused" not in out
