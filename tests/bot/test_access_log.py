"""aiohttp's access log: off by default (no line, no cost), one line a request with LOG_ACCESS=1."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest

from bot.cli import access_logger
from bot.settings import load_settings
from tests.support.serve import CLI, free_port, serve_env, upgrade, wait_healthy
from tests.support.slack import FakeSlack


def serve_and_get(tmp_path: Path, slack: FakeSlack, **extra: str) -> str:
    """Start `wavegate serve`, GET /healthz twice, stop it; everything it logged."""
    port = free_port()
    env = serve_env(
        slack,
        database=f"sqlite:///{tmp_path / 'serve.db'}",
        port=port,
        cleared=("SLACK_", "WAVEGATE_", "LOG_"),
        **extra,
    )
    upgrade(env)
    process = subprocess.Popen(
        [*CLI, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        with urllib.request.urlopen(f"{url}/healthz?probe=access", timeout=5) as response:
            assert response.status == 200
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    return output.decode()


def test_access_logging_is_off_unless_log_access_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_ACCESS", raising=False)
    assert access_logger(load_settings(_env_file=None)) is None
    monkeypatch.setenv("LOG_ACCESS", "1")
    logger = access_logger(load_settings(_env_file=None))
    assert logger is not None
    assert logger.name == "aiohttp.access"


def test_log_access_must_be_a_boolean(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import SettingsError

    monkeypatch.setenv("LOG_ACCESS", "loud")
    with pytest.raises(SettingsError, match=r"^LOG_ACCESS: "):
        load_settings(_env_file=None)


def test_serve_logs_no_requests_by_default(tmp_path: Path, slack: FakeSlack) -> None:
    output = serve_and_get(tmp_path, slack)
    assert "wavegate serving on port" in output
    assert "/healthz?probe=access" not in output


def test_serve_logs_each_request_with_log_access(tmp_path: Path, slack: FakeSlack) -> None:
    output = serve_and_get(tmp_path, slack, LOG_ACCESS="1")
    line = next(line for line in output.splitlines() if "/healthz?probe=access" in line)
    assert "aiohttp.access" in line
    assert '"GET /healthz?probe=access HTTP/1.1" 200' in line
