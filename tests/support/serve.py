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
            raise RuntimeError(f"wavegate serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise RuntimeError("wavegate serve did not become healthy within 30 s")


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
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WAVEGATE_"))},
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": self.database,
            "WAVEGATE_POLICY": str(policy),
            "WAVEGATE_ACTUATOR_SECRET": SECRET,
            "WAVEGATE_API_TOKEN": api_token,
            "PORT": str(self.port),
        }
        self.cli = [sys.executable, "-m", "bot.cli"]
        subprocess.run(
            [*self.cli, "db", "upgrade"], env=self.env, check=True, capture_output=True, timeout=60
        )
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
