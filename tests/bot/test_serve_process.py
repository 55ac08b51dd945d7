"""`wavegate serve` as a real process: a signed /ready is answered, a forged one refused."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.serve import CLI, free_port, serve_env, upgrade, wait_healthy
from tests.support.signing import signed_headers, slash_body
from tests.support.slack import FakeSlack


@pytest.fixture
def served(slack: FakeSlack, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = serve_env(slack, database=f"sqlite:///{tmp_path / 'serve.db'}", port=port)
    upgrade(env)
    process = subprocess.Popen(
        [*CLI, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_serve_answers_signed_ready_and_refuses_a_forged_one(
    served: str, slack: FakeSlack
) -> None:
    events = f"{served}/slack/events"
    async with aiohttp.ClientSession() as http:
        body = slash_body("/ready", "new 2026.11.27-1", response_url=slack.response_url())
        async with http.post(events, data=body, headers=signed_headers(body)) as response:
            assert response.status == 200
            assert "Registered release candidate 2026.11.27-1" in (await response.json())["text"]

        body = slash_body("/ready")
        async with http.post(events, data=body, headers=signed_headers(body)) as response:
            assert response.status == 200
            reply = await response.json()
        assert reply["text"].startswith("Readiness of 2026.11.27-1 (candidate): 0 of 6 done.")
        assert reply["blocks"][0]["type"] == "header"

        forged = slash_body("/ready", "new 6.6.6")
        headers = signed_headers(forged, secret="guessed")
        async with http.post(events, data=forged, headers=headers) as response:
            assert response.status == 401

        async with http.get(f"{served}/readyz") as response:
            assert response.status == 200, await response.text()
