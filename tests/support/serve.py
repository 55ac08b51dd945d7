"""`wavegate serve` as a real process on loopback, restartable on the same database and port,
with a policy file, the actuator secret and an API token (tests and benchmarks; no tests here)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlmodel import Session, col, select

from storage.db import make_engine
from storage.models import AuditEvent
from tests.support.actuator import SECRET
from tests.support.paths import ROOT
from tests.support.signing import SIGNING_SECRET
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
            raise RuntimeError(f"wavegate serve exited with {process.returncode}: {output}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise RuntimeError("wavegate serve did not become healthy within 30 s")


CLI = [sys.executable, "-m", "bot.cli"]


def serve_env(
    slack: FakeSlack,
    *,
    database: str,
    port: int,
    cleared: tuple[str, ...] = ("SLACK_", "WAVEGATE_"),
    **extra: str,
) -> dict[str, str]:
    """The environment of a `wavegate serve` against the fake Slack: this one's, without the
    variables starting with `cleared`, plus the Slack settings, the database, the port and
    `extra`."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(cleared)},
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": database,
        "PORT": str(port),
        **extra,
    }


def upgrade(env: dict[str, str]) -> None:
    """`wavegate db upgrade` in `env`."""
    subprocess.run([*CLI, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)


class Served:
    """One `wavegate serve` process, restartable on the same database and port."""

    def __init__(
        self,
        tmp: Path,
        slack: FakeSlack,
        policy_text: str,
        *,
        api_token: str,
        database: str | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        policy = tmp / "policy.yml"
        policy.write_text(policy_text)
        self.database = database or f"sqlite:///{tmp / 'serve.db'}"
        self.env = serve_env(
            slack,
            database=self.database,
            port=self.port,
            WAVEGATE_POLICY=str(policy),
            WAVEGATE_ACTUATOR_SECRET=SECRET,
            WAVEGATE_API_TOKEN=api_token,
        )
        self.cli = CLI
        upgrade(self.env)
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.process = subprocess.Popen(
            [*self.cli, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_healthy(self.url, self.process)

    async def start(self) -> None:
        await asyncio.to_thread(self.spawn)

    def stop(self, how: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(how)
        self.process.wait(timeout=30)

    def audit(self, action: str) -> list[AuditEvent]:
        engine = make_engine(self.database)
        with Session(engine) as session:
            query = select(AuditEvent).where(AuditEvent.action == action)
            events = list(session.exec(query.order_by(col(AuditEvent.id))))
        engine.dispose()
        return events
