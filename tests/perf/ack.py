"""Benchmark: how fast `wavegate serve` acknowledges slash commands, next to two bare Bolt apps.

    python -m tests.perf.ack                         # or: make bench-ack
    python -m tests.perf.ack --rounds 5 --seconds 2 --concurrency 32 --db sqlite
    python -m tests.perf.ack --db postgres           # TEST_DATABASE_URL or --database-url
    python -m tests.perf.ack --quick                 # a smoke run of a few seconds
    python -m tests.perf.ack --paused                # 199 of the 200 paused: no poller load

Three servers run as processes on 127.0.0.1: a bare slack-bolt AsyncApp with Bolt's defaults
acking empty (tests/perf/bare_bolt.py), the same with `process_before_response=True`, and
`wavegate serve` against a fake Slack Web API in this process. Where there are two cores the
servers share the first and this process (the load generator) takes the second. Each scenario
runs interleaved rounds (Bolt, Bolt pbr, wavegate, Bolt, …) of concurrent signed requests over
one keep-alive aiohttp session; every answer is checked (HTTP 200, and for wavegate the reply
it should give) and counted as bad otherwise. It prints figures and the issue's targets; a
missed target is printed, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from tests.support.signing import SIGNING_SECRET, signed_headers, slash_body
from tests.support.slack import BOT_TOKEN, FakeSlack

ROOT = Path(__file__).resolve().parents[2]
READY_RELEASE = "2026.12.01-ready"
# U0CONSOLE holds release-managers in the built-in policy: promote passes the permission check
# and is refused by the observation window, the refusal the scenario is about.
PROMOTER = "U0CONSOLE"
START_SECONDS = 30.0
ROUND_GRACE = 30.0  # a round may overrun its length by this much before it is abandoned
USABLE_CPUS = frozenset(os.sched_getaffinity(0))


# ---------------------------------------------------------------- scenarios and servers


@dataclass(frozen=True)
class Scenario:
    title: str
    command: str
    text: str
    expect: str  # how wavegate's reply text starts
    phase: str  # "empty": no rollout (one candidate release); "busy": the seeded rollouts
    user: str = "U0RM1"
    by_respond: bool = False  # wavegate acks empty and answers through response_url
    # Targets against Bolt with defaults: (least throughput ratio, most p99 ratio).
    target: tuple[float, float] | None = None


def scenarios(rollouts: int, promoted: str) -> list[Scenario]:
    return [
        Scenario(
            "/wave status, 0 active rollouts",
            "/wave",
            "status",
            "No rollout is active.",
            "empty",
            target=(1.0, 1.0),
        ),
        Scenario(
            f"/ready {READY_RELEASE}",
            "/ready",
            READY_RELEASE,
            f"Readiness of {READY_RELEASE} (candidate)",
            "empty",
        ),
        Scenario(
            f"/wave status, {rollouts} active rollouts",
            "/wave",
            "status",
            f"{rollouts} active rollouts.",
            "busy",
            target=(1 / 1.5, 1.5),
        ),
        Scenario(
            "/wave promote, refused (window not passed)",
            "/wave",
            f"promote {promoted}",
            f"Refused: cannot promote {promoted}",
            "busy",
            user=PROMOTER,
            by_respond=True,
        ),
    ]


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    cpu: int | None
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_wavegate(self) -> bool:
        return self.name == "wavegate"

    def start(self) -> None:
        """Start it on every core (start-up is CPU-bound; servers start side by side), wait
        until /healthz answers, then pin each of its threads to the server core."""
        self.port = free_port()
        everywhere = USABLE_CPUS

        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env={**self.env, "PORT": str(self.port)},
                cwd=self.log.parent,  # not the checkout: its .env must not leak in
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.sched_setaffinity(0, everywhere),
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        self.pin()
                        return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer /healthz in {START_SECONDS:g} s")

    def pin(self) -> None:
        # Affinity is per thread: pin every thread it has (new ones inherit from these).
        assert self.process is not None
        if self.cpu is None:
            return
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with suppress(ProcessLookupError):
                os.sched_setaffinity(int(task.name), {self.cpu})

    def pause(self, paused: bool) -> None:
        """SIGSTOP while another server is measured, so its background work (wavegate's
        poller) does not land in their figures; SIGCONT before its own rounds."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.pause(False)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return math.nan

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads) so far."""
        assert self.process is not None
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cores() -> tuple[int | None, int | None]:
    """(server core, load core): the first two this process may use, or none to pin."""
    usable = sorted(USABLE_CPUS)
    return (usable[0], usable[1]) if len(usable) >= 2 else (None, None)


# ---------------------------------------------------------------- the database


def database_url(args: argparse.Namespace, tmp: Path) -> str:
    if args.db == "sqlite":
        return f"sqlite:///{tmp / 'wavegate.db'}"
    url = args.database_url or os.environ.get("TEST_DATABASE_URL")
    if not url:
        raise SystemExit("--db postgres needs --database-url or TEST_DATABASE_URL (it is wiped)")
    from tests.conftest import reset_postgres

    reset_postgres(url).dispose()
    return url


def prepare_database(upgrade: list[str], env: dict[str, str], tmp: Path, url: str) -> None:
    """`wavegate db upgrade`, then the candidate `/ready RELEASE` reads."""
    subprocess.run(upgrade, env=env, cwd=tmp, check=True, capture_output=True, timeout=120)
    seed_release(url)


def seed_release(url: str) -> None:
    from storage.db import make_engine, session_scope
    from storage.releases import create_release

    engine = make_engine(url)
    with session_scope(engine) as session:
        create_release(READY_RELEASE, actor="U0RM1", at=datetime.now(UTC), session=session)
    engine.dispose()


def seed_rollouts(url: str, count: int, *, paused: bool = False) -> str:
    """`count` rollouts running their first wave of the built-in `default` plan, just started
    (with `paused`, all but the first are paused by hand, so the poller has one to poll);
    returns the first one's release (the one promote is refused for)."""
    from storage.db import make_engine, session_scope
    from storage.models import PauseKind, ReleaseState, Rollout, RolloutState
    from storage.releases import create_release
    from storage.rollouts import create_rollout

    now = datetime.now(UTC)
    engine = make_engine(url)
    versions = [f"2026.12.01-{i:04d}" for i in range(count)]
    with session_scope(engine) as session:
        for version in versions:
            release = create_release(version, actor="U0RM1", at=now, session=session)
            release.state = ReleaseState.rolling_out
            assert release.id is not None
            rollout = Rollout(
                release_id=release.id,
                plan="default",
                wave_started_at=now,
                started_by="U0RM1",
                started_at=now,
            )
            if paused and version != versions[0]:
                rollout.state = RolloutState.paused
                rollout.pause_kind = PauseKind.manual
                rollout.paused_reason = "benchmark"
            create_rollout(rollout, session=session)
    engine.dispose()
    return versions[0]


# ---------------------------------------------------------------- load


@dataclass
class Round:
    latencies: list[float] = field(default_factory=list)
    bad: int = 0
    wall: float = 0.0
    cpu: float = 0.0  # the server's
    load_cpu: float = 0.0  # this process's
    rss: float = math.nan
    drain: float = 0.0  # how long after the round the last response_url answer arrived
    first_bad: str = ""


@dataclass
class Load:
    http: aiohttp.ClientSession
    slack: FakeSlack
    concurrency: int
    requests: int | None
    rounds_run: int = 0

    async def run(self, server: Server, scenario: Scenario, *, seconds: float | None) -> Round:
        """One round against one server: `concurrency` workers posting the same signed command
        until the time (or the request count) is used up."""
        self.rounds_run += 1
        key = f"round-{self.rounds_run}"
        body = slash_body(
            scenario.command,
            scenario.text,
            user_id=scenario.user,
            response_url=self.slack.response_url(key),
        )
        headers = signed_headers(body)  # valid for 5 minutes: one signature serves the round
        check = answer_check(server, scenario)
        result = Round()
        issued = 0
        limit = self.requests if seconds is None else None
        url = f"{server.url}/slack/events"
        started = time.perf_counter()
        stop_at = started + (seconds if seconds is not None else math.inf)

        async def worker() -> None:
            nonlocal issued
            while time.perf_counter() < stop_at and (limit is None or issued < limit):
                issued += 1
                sent = time.perf_counter()
                try:
                    async with self.http.post(url, data=body, headers=headers) as response:
                        payload = await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    result.bad += 1
                    result.first_bad = result.first_bad or repr(exc)
                    continue
                result.latencies.append(time.perf_counter() - sent)
                problem = check(status, payload)
                if problem:
                    result.bad += 1
                    result.first_bad = result.first_bad or problem

        cpu, load_cpu = server.cpu_seconds(), time.process_time()
        bound = (seconds if seconds is not None else 60.0) + ROUND_GRACE
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(self.concurrency))), bound)
        result.wall = time.perf_counter() - started
        result.cpu = server.cpu_seconds() - cpu
        result.load_cpu = time.process_time() - load_cpu
        if server.is_wavegate and scenario.by_respond:
            await self.collect_responses(key, scenario, result)
        result.rss = server.rss_mb()
        return result

    async def collect_responses(self, key: str, scenario: Scenario, result: Round) -> None:
        """The refusals arrive at response_url after the acks: wait for them (bounded), and
        count a missing or different one as a bad answer."""
        ended = time.perf_counter()
        expected = len(result.latencies)
        while len(self.slack.responses_to(key)) < expected:
            if time.perf_counter() - ended > ROUND_GRACE:
                break
            await asyncio.sleep(0.02)
        result.drain = time.perf_counter() - ended
        answers = self.slack.responses_to(key)
        wrong = [a for a in answers if not str(a.get("text", "")).startswith(scenario.expect)]
        result.bad += max(0, expected - len(answers)) + len(wrong)
        if wrong and not result.first_bad:
            result.first_bad = str(wrong[0].get("text", ""))[:200]
        self.slack.responses.clear()


def answer_check(server: Server, scenario: Scenario) -> Callable[[int, bytes], str]:
    """What a right answer is: an empty ack from Bolt, the expected reply from wavegate."""

    def check(status: int, payload: bytes) -> str:
        if status != 200:
            return f"HTTP {status}: {payload[:200]!r}"
        if not server.is_wavegate or scenario.by_respond:
            return "" if not payload else f"ack not empty: {payload[:200]!r}"
        try:
            text = str(json.loads(payload).get("text", ""))
        except (ValueError, AttributeError):
            return f"not a JSON reply: {payload[:200]!r}"
        return "" if text.startswith(scenario.expect) else f"unexpected reply: {text[:200]!r}"

    return check


# ---------------------------------------------------------------- figures


@dataclass
class Figures:
    requests: int
    bad: int
    rps: float
    p50: float  # ms
    p99: float  # ms
    cpu_ms: float  # server CPU per request
    rss: float
    load_busy: float  # share of the load generator's core in use
    drain: float
    first_bad: str


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarise(rounds: list[Round]) -> Figures:
    latencies = [x for r in rounds for x in r.latencies]
    wall = sum(r.wall for r in rounds)
    done = len(latencies)
    return Figures(
        requests=done,
        bad=sum(r.bad for r in rounds),
        rps=done / wall if wall else math.nan,
        p50=percentile(latencies, 0.50) * 1000,
        p99=percentile(latencies, 0.99) * 1000,
        cpu_ms=sum(r.cpu for r in rounds) / done * 1000 if done else math.nan,
        rss=max(r.rss for r in rounds),
        load_busy=sum(r.load_cpu for r in rounds) / wall if wall else math.nan,
        drain=max(r.drain for r in rounds),
        first_bad=next((r.first_bad for r in rounds if r.first_bad), ""),
    )


LABELS = {
    "bolt": "bare Bolt, defaults",
    "bolt-pbr": "bare Bolt, process_before_response",
    "wavegate": "wavegate serve",
}


def print_table(scenario: Scenario, figures: dict[str, Figures]) -> None:
    print(f"## {scenario.title}")
    header = f"{'server':<36}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/req':>11}"
    print(header + f"{'RSS MB':>8}{'answers':>9}{'bad':>5}{'load CPU':>9}")
    for name, f in figures.items():
        print(
            f"{LABELS[name]:<36}{f.rps:>8.0f}{f.p50:>8.1f}{f.p99:>8.1f}{f.cpu_ms:>11.2f}"
            f"{f.rss:>8.0f}{f.requests:>9}{f.bad:>5}{f.load_busy:>8.0%}"
        )
    wave = figures["wavegate"]
    for base in ("bolt", "bolt-pbr"):
        b = figures[base]
        print(
            f"  wavegate / {LABELS[base]}: throughput {wave.rps / b.rps:.2f}x, "
            f"p99 {wave.p99 / b.p99:.2f}x"
        )
    if scenario.target is not None:
        least, most = scenario.target
        b = figures["bolt"]
        rps, p99 = wave.rps / b.rps, wave.p99 / b.p99
        print(
            f"  target vs Bolt defaults: throughput {rps:.2f}x >= {least:.2f}x "
            f"{'PASS' if rps >= least else 'MISS'}; p99 {p99:.2f}x <= {most:.2f}x "
            f"{'PASS' if p99 <= most else 'MISS'}"
        )
    if scenario.by_respond:
        print(f"  (the refusals reached response_url at most {wave.drain:.2f} s after a round)")
    for name, f in figures.items():
        if f.first_bad:
            print(f"  first bad answer from {LABELS[name]}: {f.first_bad}")
    print()


# ---------------------------------------------------------------- the run


async def measure_phase(
    load: Load, servers: list[Server], phase: list[Scenario], args: argparse.Namespace
) -> dict[str, dict[str, Figures]]:
    """Warm each server up on each scenario, then interleave the rounds."""
    seconds = None if args.requests else args.seconds
    warm = None if args.requests else min(0.5, args.seconds)
    results: dict[str, dict[str, Figures]] = {}

    async def one_round(server: Server, scenario: Scenario, seconds: float | None) -> Round:
        for other in servers:
            other.pause(other is not server)
        try:
            return await load.run(server, scenario, seconds=seconds)
        finally:
            for other in servers:
                other.pause(False)

    for scenario in phase:
        for server in servers:
            await one_round(server, scenario, warm)
        rounds: dict[str, list[Round]] = {server.name: [] for server in servers}
        for _ in range(args.rounds):
            for server in servers:
                rounds[server.name].append(await one_round(server, scenario, seconds))
        results[scenario.title] = {name: summarise(rs) for name, rs in rounds.items()}
    return results


async def idle_cpu(server: Server, seconds: float) -> float:
    """The share of a core the server burns with no requests (its scheduler, the poller)."""
    before = server.cpu_seconds()
    await asyncio.sleep(seconds)
    return (server.cpu_seconds() - before) / seconds


async def bench(args: argparse.Namespace) -> None:
    server_cpu, load_cpu = cores()
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    slack = await FakeSlack().start()
    tmp = Path(tempfile.mkdtemp(prefix="wavegate-bench-ack-"))
    try:
        url = await asyncio.to_thread(database_url, args, tmp)
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("SLACK_", "WAVEGATE_", "LOG_"))
                and k not in {"DATABASE_URL", "PORT"}
            },
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": url,
        }
        cli = [sys.executable, "-m", "bot.cli"]
        bolt = [sys.executable, "-m", "tests.perf.bare_bolt"]
        pbr = [*bolt, "--process-before-response"]
        bolts = [
            Server("bolt", bolt, env, tmp / "bolt.log", server_cpu),
            Server("bolt-pbr", pbr, env, tmp / "pbr.log", server_cpu),
        ]
        wavegate = Server("wavegate", [*cli, "serve"], env, tmp / "wavegate.log", server_cpu)
        results: dict[str, dict[str, Figures]] = {}
        idle: dict[str, float] = {}
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        try:
            started = await asyncio.gather(
                asyncio.to_thread(prepare_database, [*cli, "db", "upgrade"], env, tmp, url),
                *(asyncio.to_thread(server.start) for server in bolts),
                return_exceptions=True,
            )
            for outcome in started:
                if isinstance(outcome, BaseException):
                    raise outcome
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
                load = Load(http, slack, args.concurrency, args.requests)
                promoted = ""
                for phase in ("empty", "busy"):
                    if phase == "busy":
                        promoted = await asyncio.to_thread(
                            seed_rollouts, url, args.rollouts, paused=args.paused
                        )
                    todo = [s for s in scenarios(args.rollouts, promoted) if s.phase == phase]
                    # A fresh process per phase: nothing it cached survives the seeding.
                    try:
                        await asyncio.to_thread(wavegate.start)
                        results |= await measure_phase(load, [*bolts, wavegate], todo, args)
                        idle[phase] = await idle_cpu(wavegate, args.idle)
                    finally:
                        await asyncio.to_thread(wavegate.stop)
        finally:
            for server in bolts:
                await asyncio.to_thread(server.stop)
        report(args, url, results, idle, pinned=server_cpu is not None)
    finally:
        await slack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    args: argparse.Namespace,
    url: str,
    results: dict[str, dict[str, Figures]],
    idle: dict[str, float],
    *,
    pinned: bool,
) -> None:
    length = f"{args.requests} requests" if args.requests else f"{args.seconds:g} s"
    print(
        f"wavegate acknowledgement benchmark: {os.cpu_count()} CPUs "
        f"({'servers on one core, load on another' if pinned else 'not pinned'}), "
        f"{url.split(':', 1)[0]} database, {args.rounds} interleaved rounds x {length}, "
        f"{args.concurrency} concurrent signed requests over one keep-alive session"
        + (f"; {args.rollouts - 1} of the {args.rollouts} rollouts paused" if args.paused else "")
    )
    print()
    for scenario in scenarios(args.rollouts, ""):
        print_table(scenario, results[scenario.title])
    print(
        f"wavegate idle CPU after its rounds (scheduler, poller): "
        f"{idle.get('empty', math.nan):.0%} of a core with no rollouts, "
        f"{idle.get('busy', math.nan):.0%} with {args.rollouts}"
    )
    print(
        "CPU ms/req is the server's own CPU over its rounds; load CPU is this process's share "
        "of its core (near 100% means the load generator, not the server, set the pace)."
    )
    bad = sum(f.bad for figures in results.values() for f in figures.values())
    print(f"bad answers: {bad}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.perf.ack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per server and scenario")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=2.0, help="length of a round")
    length.add_argument("--requests", type=int, help="requests per round, instead of --seconds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--database-url", help="for --db postgres (default: TEST_DATABASE_URL)")
    parser.add_argument("--rollouts", type=int, default=200, help="active rollouts seeded")
    parser.add_argument(
        "--paused",
        action="store_true",
        help="seed the rollouts paused but the first: /wave status lists as many, and the "
        "poller (which polls running ones) has one to poll, so the figures are the ack path's",
    )
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU sampling")
    parser.add_argument("--quick", action="store_true", help="one short round each (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.requests, args.idle = 1, 0.3, None, 0.2
    if not 1 <= args.rounds <= 50 or not 1 <= args.concurrency <= 256:
        parser.error("--rounds must be 1..50 and --concurrency 1..256 (a bounded benchmark)")
    if not 0 < args.seconds <= 60 or not 1 <= (args.requests or 1) <= 100_000:
        parser.error("--seconds must be in (0, 60] and --requests 1..100000")
    if not 6 <= args.rollouts <= 5000:
        # Six or more: `/wave status` lists them one line each (commands/wave/family.py).
        parser.error("--rollouts must be 6..5000")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
