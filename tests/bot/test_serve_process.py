"""`wavegate serve` as a real process: a signed /ready is answered, a forged one refused."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.paths import ROOT
from tests.support.signing import SIGNING_SECRET, signed_headers, slash_body
from tests.support.slack import BOT_TOKEN, FakeSlack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"wavegate serve exited: {output}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    pytest.fail("wavegate serve did not become healthy within 30 s")


@pytest.fixture
def served(slack: FakeSlack, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WAVEGATE_"))},
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "PORT": str(port),
    }
    cli = [sys.executable, "-m", "bot.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    process = subprocess.Popen(
        [*cli, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
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
