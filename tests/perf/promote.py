"""Benchmark: simultaneous promotes against a slow deploy system, and what the rest of the
service feels meanwhile. It prints figures against targets; it asserts nothing.

    python -m tests.perf.promote [--db sqlite|postgres] [--seconds 2]

A real `wavegate serve` process (its own event loop and database work), the fake Slack and the
fake deploy system (every webhook held `--seconds`) in this one. Two phases:
- 20 people type `/wave promote REL --force …` on one rollout at once;
- 50 promotes of 50 different rollouts at once (50 commands in flight on the deploy system).
Each prints the webhooks the deploy system received, the replies people got, the worst ack
time of the commands and the worst `/healthz` time while they were in flight (probed every
20 ms). PostgreSQL is TEST_DATABASE_URL, which must be set (its public schema is dropped
first: give it a database of your own). All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.support.actuator import FakeDeploySystem
from tests.support.serve import Served
from tests.support.signing import signed_headers, slash_body
from tests.support.slack import FakeSlack

GOAL_HEALTHZ = 0.100  # seconds, worst case
GOAL_ACK = 0.500  # seconds, worst case (Slack allows 3 s)
API_TOKEN = "bench-api-token"
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
actuator: {{url: "{url}", secret_env: WAVEGATE_ACTUATOR_SECRET, timeout: 30s, retries: 0}}
"""


class Client:
    def __init__(self, http: aiohttp.ClientSession, served: Served, slack: FakeSlack) -> None:
        self.http, self.served, self.slack = http, served, slack
        self.count = 0

    async def type(self, text: str) -> tuple[float, str, str]:
        """(ack seconds, ack text, response key) of one `/wave …` or `/ready …` command."""
        self.count += 1
        key = f"b{self.count}"
        command, _, rest = text.partition(" ")
        body = slash_body(command, rest, response_url=self.slack.response_url(key))
        started = time.perf_counter()
        url = f"{self.served.url}/slack/events"
        async with self.http.post(url, data=body, headers=signed_headers(body)) as response:
            raw = await response.read()
        acked = time.perf_counter() - started
        text_out = ""
        if raw:
            text_out = str((await response.json(content_type=None)).get("text") or "")
        return acked, text_out, key

    async def reply(self, key: str, *, within: float = 60.0) -> str | None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            got = self.slack.responses_to(key)
            if got:
                return str(got[-1]["text"])
            await asyncio.sleep(0.02)
        return None

    async def run(self, text: str) -> str:
        _, acked, key = await self.type(text)
        return acked or (await self.reply(key)) or ""


async def probe_health(client: Client, stop: asyncio.Event) -> list[tuple[float, float]]:
    """(seconds it took, when it started) of every /healthz probe until `stop`."""
    times = []
    begun = time.perf_counter()
    while not stop.is_set():
        started = time.perf_counter()
        async with client.http.get(f"{client.served.url}/healthz") as response:
            await response.read()
        times.append((time.perf_counter() - started, started - begun))
        await asyncio.sleep(0.02)
    return times


async def start_prober(url: str) -> asyncio.subprocess.Process:
    """tests/perf/healthz_probe.py probing `url` from its own process, once it has begun."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.perf.healthz_probe", url, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert (await process.stdout.readline()).strip() == b"ready"
    return process


async def stop_prober(process: asyncio.subprocess.Process) -> list[tuple[float, float]]:
    process.send_signal(signal.SIGTERM)
    out, _ = await process.communicate()
    return [(took, at) for took, at in json.loads(out)]


async def idle(url: str, seconds: float = 3.0) -> None:
    """The baseline: the worst /healthz with nothing in flight, for as long as a phase lasts
    (on a shared machine this is the noise every figure below carries)."""
    prober = await start_prober(url)
    await asyncio.sleep(seconds)
    probed = await stop_prober(prober)
    worst = max(took for took, _ in probed)
    print(f"\nidle, nothing in flight for {seconds:g}s")
    print(f"  worst /healthz      {worst * 1000:7.1f} ms   ({len(probed)} probes)")


async def phase(
    name: str, client: Client, deploy: FakeDeploySystem, commands: list[str], seconds: float
) -> None:
    before = deploy.count()
    deploy.stall_seconds = seconds
    stop = asyncio.Event()
    health = asyncio.create_task(probe_health(client, stop))
    prober = await start_prober(client.served.url)
    started = time.perf_counter()
    typed = await asyncio.gather(*(client.type(c) for c in commands))
    replies = await asyncio.gather(*(client.reply(key) for _, acked, key in typed if not acked))
    took = time.perf_counter() - started
    stop.set()
    healthz = await health
    probed = await stop_prober(prober)
    deploy.stall_seconds = 0
    answered = sum(1 for r in replies if r) + sum(1 for _, acked, _ in typed if acked)
    worst_ack = max(t for t, _, _ in typed)
    worst_health, worst_at = max(probed) if probed else (float("nan"), float("nan"))
    worst_here = max(healthz)[0] if healthz else float("nan")
    print(f"\n{name}: {len(commands)} commands, deploy system answering in {seconds:g}s")
    print(f"  webhooks received   {deploy.count() - before}")
    print(f"  replies received    {answered} of {len(commands)} (all in {took:.2f}s)")
    print(f"  worst ack           {worst_ack * 1000:7.1f} ms   (goal < {GOAL_ACK * 1000:.0f} ms)")
    print(
        f"  worst /healthz      {worst_health * 1000:7.1f} ms   (goal < {GOAL_HEALTHZ * 1000:.0f} "
        f"ms; {len(probed)} probes from a process of their own; the worst began {worst_at:.2f}s "
        "into the phase)"
    )
    print(
        f"  (/healthz from here {worst_here * 1000:7.1f} ms   (this process's loop also runs the "
        "fake Slack and deploy system, and adds their delays))"
    )
    outcomes: dict[str, int] = {}
    for reply in replies:
        head = re.sub(r"\d+", "N", " ".join((reply or "no reply").split()[:2]))
        outcomes[head] = outcomes.get(head, 0) + 1
    print(f"  replies             {outcomes}")


async def main(db: str, seconds: float) -> None:
    slack = await FakeSlack().start()
    deploy = await FakeDeploySystem().start()
    with tempfile.TemporaryDirectory() as tmp:
        database = None
        if db == "postgres":
            from tests.conftest import reset_postgres

            database = os.environ.get("TEST_DATABASE_URL")
            if not database:
                raise SystemExit("--db postgres: set TEST_DATABASE_URL (its schema is dropped)")
            reset_postgres(database).dispose()
        served = Served(
            Path(tmp),
            slack,
            POLICY.format(url=deploy.url),
            api_token=API_TOKEN,
            database=database,
        )
        await served.start()
        try:
            async with aiohttp.ClientSession() as http:
                client = Client(http, served, slack)
                versions = ["one", *(f"r{i}" for i in range(50))]
                for version in versions:
                    await client.run(f"/ready new {version}")
                    await client.run(f"/ready waive {version} tests bench")
                    started = await client.run(f"/wave start {version}")
                    assert started.startswith("Started"), started
                print(f"wavegate serve on {db}; {len(versions)} rollouts started")
                await idle(client.served.url)
                await phase(
                    "20 simultaneous promotes of one rollout",
                    client,
                    deploy,
                    ["/wave promote one --force bench"] * 20,
                    seconds,
                )
                await phase(
                    "50 promotes of 50 rollouts at once",
                    client,
                    deploy,
                    [f"/wave promote r{i} --force bench" for i in range(50)],
                    seconds,
                )
        finally:
            served.stop(signal.SIGTERM)
    await deploy.stop()
    await slack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=2.0, help="the deploy system's delay")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.db, arguments.seconds))
