"""Benchmark: poll cycles of N running rollouts x 4 metrics at a 1 m interval against a fake
Prometheus on loopback, the acknowledgement time of `/wave status` (signed requests through the
real app) while a cycle runs, this process's peak RSS, and whether one slow metric source or one
slow deploy system (each 10 s) delays the other rollouts' polls. It prints each figure against
its target (PASS/MISS); it asserts nothing.

    python -m tests.perf.poll                                # or: make bench (500, SQLite)
    python -m tests.perf.poll --db postgres --rollouts 5000  # make bench DB=postgres ROLLOUTS=5000
    python -m tests.perf.poll --database postgresql://postgres@127.0.0.1/bench

`--db postgres` uses TEST_DATABASE_URL (its public schema is dropped and rebuilt), or --database.
Three processes, so each figure is wavegate's own: this one (wavegate as `serve` runs it: the
poller on the work loop's thread, the app on the HTTP loop, one database),
the fake Prometheus, and a client sending `/wave status` every 50 ms and timing the answers.
All traffic stays on 127.0.0.1 and every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

GOAL_CYCLE = 20.0  # seconds: "well inside" the metrics' 1 m interval
GOAL_ACK_P99 = 0.150  # seconds, while a cycle runs
GOAL_RSS_MB = 250.0
# A poll cycle with one slow source (or deploy system) in it may take this much longer for the
# other rollouts than a cycle with none, watched the same way (the watching has a cost of its
# own); SLOW_SECONDS more would mean they waited for it.
GOAL_ISOLATION = 1.25
SLOW_SECONDS = 10.0
MAX_SECONDS = 900.0  # any one phase; the benchmark gives up rather than hang
ACTUATOR_SECRET_ENV = "WAVEGATE_BENCH_ACTUATOR_SECRET"

METRICS = [
    ("completion_success_rate", ">= 0.97"),
    ("preview_startup_ok_ratio", ">= 0.5"),
    ("migration_ok_ratio", ">= 0.5"),
    ("auth_ok_ratio", ">= 0.5"),
]


def policy_text(prom_url: str, metrics: int, deploy_url: str) -> str:
    """The default plan judges the N metrics; two one-wave plans hold the slow cases: a metric
    whose source answers after SLOW_SECONDS, and a failing metric whose pause waits
    SLOW_SECONDS on the deploy system."""
    names, entries = [], []
    for index in range(metrics):
        name, condition = METRICS[index % len(METRICS)]
        name = name if index < len(METRICS) else f"{name}_{index}"
        query = f'sum(rate({name}_total{{release="{{release}}"}}[{{window}}]))'
        names.append(name)
        entries.append(
            f"  - {{id: {name}, source: prom, query: '{query}', success: \"{condition}\", "
            "interval: 1m}"
        )
    wave = "{name: free, tiers: [free], percent: 100, observe: 24h, metrics: [%s]}"
    slow = "timeout: 30s"
    lines = [
        "version: 1",
        "channels: {rollouts: C0ROLLOUTS, incidents: C0INCIDENTS}",
        "roles: {release-managers: [U0RM1]}",
        "tiers: [free]",
        "plans:",
        f"  default: [{wave % ', '.join(names)}]",
        f"  slow-source: [{wave % 'slow_source'}]",
        f"  slow-deploy: [{wave % 'deploy_trip'}]",
        "sources:",
        f'  prom: {{type: prometheus, url: "{prom_url}", timeout: 5s}}',
        f'  slow: {{type: prometheus, url: "{prom_url}", {slow}}}',
        f'actuator: {{url: "{deploy_url}", secret_env: {ACTUATOR_SECRET_ENV}, {slow}, retries: 0}}',
        "metrics:",
        *entries,
        '  - {id: slow_source, source: slow, query: slow_source_ratio, success: ">= 0.5"}',
        '  - {id: deploy_trip, source: prom, query: deploy_trip_ratio, failure: "> 0.5"}',
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the fake Prometheus process


async def serve_prometheus() -> None:
    from tests.support.prometheus import FakePrometheus, value

    prom = await FakePrometheus().start()
    prom.default = value(0.99)
    prom.program("slow_source_ratio", replace(value(0.99), delay=SLOW_SECONDS))
    print(prom.url, flush=True)
    # Until the parent closes our stdin (or dies), bounded in time.
    loop = asyncio.get_running_loop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.read), MAX_SECONDS * 3)
    await prom.stop()


# ---------------------------------------------------------------- the client process


async def send_status(url: str, text: str, every: float, limit: int) -> None:
    import aiohttp

    from tests.support.signing import signed_headers, slash_body

    latencies: list[float] = []
    errors = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reader = loop.run_in_executor(None, sys.stdin.read)
    reader.add_done_callback(lambda _: stop.set())
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        print("ready", flush=True)
        while not stop.is_set() and len(latencies) + errors < limit:
            if time.monotonic() - started > MAX_SECONDS:
                break
            body = slash_body("/wave", text, user_id="U0RM1")
            headers = signed_headers(body)
            sent = time.perf_counter()
            try:
                async with http.post(f"{url}/slack/events", data=body, headers=headers) as r:
                    await r.read()
                    ok = r.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    print(json.dumps({"latencies": latencies, "errors": errors}), flush=True)


# ---------------------------------------------------------------- wavegate (this process)


class Child:
    """A helper process of this benchmark, stopped by closing its stdin."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.perf.poll", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )

    async def first_line(self) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), 30)
        return line.strip()

    async def finish(self) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        out = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.read), 60)
        await asyncio.to_thread(self.process.wait, 30)
        return out.strip()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def seed_rollouts(
    engine: object,
    count: int,
    now: datetime,
    *,
    plan: str = "default",
    prefix: str = "2026.11.27",
    paused: bool = False,
) -> list[int]:
    """`count` running (or paused) rollouts of `plan`; their ids."""
    from sqlmodel import Session

    from storage.models import Release, ReleaseState, Rollout, RolloutState

    with Session(engine, expire_on_commit=False) as session:  # type: ignore[arg-type]
        releases = [
            Release(
                version=f"{prefix}-{i:04d}",
                state=ReleaseState.rolling_out,
                created_by="U0RM1",
                created_at=now,
            )
            for i in range(count)
        ]
        session.add_all(releases)
        session.flush()
        rollouts = [
            Rollout(
                release_id=release.id,
                plan=plan,
                state=RolloutState.paused if paused else RolloutState.running,
                wave_started_at=now,
                started_by="U0RM1",
                started_at=now,
            )
            for release in releases
            if release.id is not None
        ]
        session.add_all(rollouts)
        session.commit()
        return [r.id for r in rollouts if r.id is not None]


def resume(engine: object, ids: list[int], now: datetime) -> None:
    """Set held rollouts running, their wave starting now (a resume, without the actuator)."""
    import sqlalchemy as sa

    from storage.models import Rollout, RolloutState

    with engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(
            sa.update(Rollout)
            .where(Rollout.id.in_(ids))  # type: ignore[union-attr]
            .values(state=RolloutState.running, wave_started_at=now)
        )


def measurement_count(engine: object) -> int:
    import sqlalchemy as sa
    from sqlmodel import Session

    with Session(engine) as session:  # type: ignore[arg-type]
        return int(session.execute(sa.text("SELECT count(*) FROM measurement")).scalar_one())


def polls_since(engine: object, last_id: int, slow: list[int]) -> tuple[int, int]:
    """Polls stored after measurement `last_id`: (by the ordinary rollouts, by the `slow` ones)."""
    import sqlalchemy as sa

    query = sa.text(
        "SELECT rollout_id, count(*) FROM measurement WHERE id > :last GROUP BY rollout_id"
    )
    with engine.connect() as connection:  # type: ignore[attr-defined]
        counts = dict(connection.execute(query, {"last": last_id}).all())
    slow_polls = sum(counts.get(i, 0) for i in slow)
    return sum(counts.values()) - slow_polls, slow_polls


def last_measurement_id(engine: object) -> int:
    import sqlalchemy as sa

    with engine.connect() as connection:  # type: ignore[attr-defined]
        return int(
            connection.execute(sa.text("SELECT coalesce(max(id), 0) FROM measurement")).scalar_one()
        )


class LoopLag:
    """The longest the event loop was late waking a 50 ms sleeper while it ran."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.05)
            self.worst = max(self.worst, time.perf_counter() - started - 0.05)

    def __enter__(self) -> LoopLag:
        self.task = asyncio.create_task(self._watch())
        return self

    def __exit__(self, *_: object) -> None:
        assert self.task is not None
        self.task.cancel()


async def timed_acks(url: str, text: str, work: object | None, seconds: float) -> dict[str, float]:
    """Run the client while `work` (an awaitable) runs, or for `seconds` when there is none."""
    client = Child("--role", "client", "--url", url, "--text", text)
    try:
        assert await client.first_line() == "ready"
        cpu, wall = time.process_time(), time.perf_counter()
        with LoopLag() as lag:
            if work is not None:
                await asyncio.wait_for(work, MAX_SECONDS)  # type: ignore[arg-type]
            else:
                await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        result = json.loads((await client.finish()).splitlines()[-1])
    finally:
        client.kill()
    latencies: list[float] = result["latencies"]
    return {
        "wall": wall,
        "cpu": cpu,
        "lag": lag.worst,
        "acks": len(latencies),
        "ack_errors": result["errors"],
        "p50": statistics.median(latencies) if latencies else math.nan,
        "p99": percentile(latencies, 0.99),
        "max": max(latencies) if latencies else math.nan,
    }


def database_url(args: argparse.Namespace, tmp: str) -> str:
    if args.database:
        return str(args.database)
    if args.db == "postgres":
        url = os.environ.get("TEST_DATABASE_URL")
        if not url:
            sys.exit(
                "--db postgres: set TEST_DATABASE_URL (a database whose public schema this "
                "benchmark drops and rebuilds) or pass --database URL"
            )
        return url
    return f"sqlite:///{Path(tmp) / 'bench.db'}"


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def bench(args: argparse.Namespace) -> None:
    from aiohttp import web
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.http.app import create_app
    from bot.jobs.waves import poll_cycle
    from bot.runtime import Runtime
    from bot.wiring import wire
    from commands.policy_file import parse_policy
    from storage.db import make_engine
    from tests.conftest import create_schema, reset_postgres, service_settings
    from tests.support.actuator import SECRET, FakeDeploySystem
    from tests.support.clock import FakeClock
    from tests.support.slack import BOT_TOKEN, FakeSlack

    if args.concurrency:
        import bot.jobs.waves

        bot.jobs.waves.POLL_CONCURRENCY = args.concurrency
    os.environ[ACTUATOR_SECRET_ENV] = SECRET
    prom = Child("--role", "prometheus")
    slack = await FakeSlack().start()
    deploy = await FakeDeploySystem(stall_seconds=SLOW_SECONDS).start()
    tmp = tempfile.TemporaryDirectory(prefix="wavegate-bench-")
    runner: web.AppRunner | None = None
    try:
        prom_url = await prom.first_line()
        database = database_url(args, tmp.name)
        if database.startswith("postgres"):
            reset_postgres(database).dispose()
        engine = make_engine(database)
        create_schema(engine)
        clock = FakeClock(datetime.now(UTC))
        # The slow cases first, so they hold the first places in a cycle; paused until used.
        held = {
            plan: seed_rollouts(engine, 1, clock(), plan=plan, prefix=plan, paused=True)
            for plan in ("slow-source", "slow-deploy")
        }
        seed_rollouts(engine, args.rollouts, clock())
        policy = parse_policy(policy_text(prom_url, args.metrics, deploy.url))
        runtime = Runtime(
            settings=service_settings(slack, database),
            engine=engine,
            policy=policy,
            clock=clock,
        )
        wire(runtime)
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        app = create_app(runtime, client=client, background=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        one = "status 2026.11.27-0000"
        # As `wavegate serve` does: the poll loop on the work loop's thread (bot/work.py), the
        # app on this one (the HTTP loop), and the start-up heap frozen out of the collector.
        gc.collect()
        gc.freeze()

        async def on_work_loop() -> None:
            await runtime.work.run(poll_cycle(runtime))

        async def cycle(text: str | None) -> tuple[dict[str, float], int]:
            """One poll cycle (every metric of every rollout due), with or without a client."""
            clock.advance(timedelta(minutes=1, seconds=1))
            before = measurement_count(engine)
            if text is None:
                cpu, wall = time.process_time(), time.perf_counter()
                with LoopLag() as lag:
                    await asyncio.wait_for(on_work_loop(), MAX_SECONDS)
                figures = {
                    "cpu": time.process_time() - cpu,
                    "wall": time.perf_counter() - wall,
                    "lag": lag.worst,
                }
            else:
                figures = await timed_acks(url, text, on_work_loop(), 0)
            return figures, measurement_count(engine) - before

        async def isolated(plan: str | None) -> dict[str, float]:
            """A cycle with one more rollout, of `plan`, whose poll waits SLOW_SECONDS (None: no
            slow one, the baseline, measured the same way): when the ordinary rollouts' polls
            were all stored, and when the slow one's was."""
            slow = held[plan] if plan is not None else []
            if plan is not None:
                resume(engine, slow, clock())
            clock.advance(timedelta(minutes=1, seconds=1))
            last = last_measurement_id(engine)
            expected = args.rollouts * args.metrics
            started = time.perf_counter()
            task = asyncio.ensure_future(on_work_loop())
            others = slow_done = math.nan
            finished = False
            while not finished and time.perf_counter() - started < MAX_SECONDS:
                # One more look after the cycle ends: its last batch may land just before.
                finished = task.done()
                if not finished:
                    await asyncio.sleep(0.1)
                ordinary, slow_polls = await asyncio.to_thread(polls_since, engine, last, slow)
                now = time.perf_counter() - started
                if math.isnan(others) and ordinary >= expected:
                    others = now
                if math.isnan(slow_done) and slow_polls:
                    slow_done = now
            await asyncio.wait_for(task, MAX_SECONDS)
            return {"others": others, "slow": slow_done, "wall": time.perf_counter() - started}

        idle_one = await timed_acks(url, one, None, 3)
        idle_all = await timed_acks(url, "status", None, 3)
        cycles = {
            "first cycle (health probes + polls)": await cycle(None),
            "steady cycle": await cycle(None),
            "steady cycle, acking `status RELEASE`": await cycle(one),
            "steady cycle, acking `status` (all)": await cycle("status"),
        }
        # Each cycle with a slow dependency is judged against a cycle just before it with none,
        # watched the same way (the watching costs the database and this process some time).
        isolation: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
        for plan, name in (
            ("slow-source", f"a source answering in {SLOW_SECONDS:g} s"),
            ("slow-deploy", f"a deploy system taking {SLOW_SECONDS:g} s"),
        ):
            baseline = await isolated(None)
            isolation[name] = (baseline, await isolated(plan))
        report(
            args,
            database,
            cycles,
            idle_one=idle_one,
            idle_all=idle_all,
            isolation=isolation,
            deploy_calls=len(deploy.received),
        )
        await runtime.source_http.close()
        engine.dispose()
    finally:
        if runner is not None:
            await runner.cleanup()
        await slack.stop()
        await deploy.stop()
        with contextlib.suppress(Exception):
            await prom.finish()
        prom.kill()
        tmp.cleanup()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    args: argparse.Namespace,
    database: str,
    cycles: dict[str, tuple[dict[str, float], int]],
    *,
    idle_one: dict[str, float],
    idle_all: dict[str, float],
    isolation: dict[str, tuple[dict[str, float], dict[str, float]]],
    deploy_calls: int,
) -> None:
    kind = database.split(":", 1)[0].split("+", 1)[0]
    print(
        f"wavegate poll benchmark: {args.rollouts} running rollouts x {args.metrics} metrics "
        f"at a 1 m interval, fake Prometheus on loopback, {kind} database, "
        f"{os.cpu_count()} CPUs (nproc)"
    )
    print()
    print(f"{'poll cycle':<40}{'polls':>7}{'wall s':>9}{'CPU ms/poll':>13}{'loop lag ms':>13}"
          f"{'target':>10}")  # fmt: skip
    for name, (figures, polls) in cycles.items():
        per_poll = figures["cpu"] / polls * 1000 if polls else math.nan
        wall = figures["wall"]
        print(
            f"{name:<40}{polls:>7}{wall:>9.2f}{per_poll:>13.2f}{figures['lag'] * 1000:>13.0f}"
            f"  < {GOAL_CYCLE:g} s {verdict(wall < GOAL_CYCLE)}"
        )
    print("  (CPU is this process's: the poller, the database, and the app answering the client;")
    print(
        "   loop lag: the longest the HTTP loop (acks, /healthz) was late for a 50 ms timer"
        " during the cycle)"
    )
    print()
    print(f"{'/wave acknowledgement':<40}{'acks':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'target':>10}")  # fmt: skip
    rows = [("`status RELEASE`, idle", idle_one, False), ("`status` (all), idle", idle_all, False)]
    rows += [(name.split(", acking ")[1] + ", during a cycle", f, True) for name, (f, _) in
             cycles.items() if ", acking " in name]  # fmt: skip
    for name, figures, judged in rows:
        failed = int(figures["ack_errors"])
        p99 = figures["p99"]
        target = f"  p99 < {GOAL_ACK_P99 * 1000:g} ms {verdict(p99 < GOAL_ACK_P99)}"
        print(
            f"{name:<40}{int(figures['acks']):>7}{figures['p50'] * 1000:>9.1f}"
            f"{p99 * 1000:>9.1f}{figures['max'] * 1000:>9.1f}"
            + (target if judged else "  (idle: for reference)")
            + (f"  ({failed} failed)" if failed else "")
        )
    print()
    print(
        f"{'one slow dependency in a cycle':<40}{'others done s':>15}{'slow one s':>12}"
        f"{'none slow s':>13}{'target':>10}"
    )
    for name, (baseline, figures) in isolation.items():
        others, alone = figures["others"], baseline["others"]
        allowed = max(alone * GOAL_ISOLATION, alone + 1.0)
        print(
            f"{name:<40}{others:>15.2f}{figures['slow']:>12.2f}{alone:>13.2f}"
            f"  others < {allowed:.1f} s {verdict(others < allowed)}"
        )
    print(
        f"  (target: the other rollouts' polls all stored within {GOAL_ISOLATION:g}x, or 1 s more,"
        f" of a cycle just before with no slow dependency (`none slow s`), watched the same way;"
        f" the deploy system was called {deploy_calls} times)"
    )
    print()
    rss = peak_rss_mb()
    print(
        f"peak RSS of wavegate's process: {rss:.0f} MB"
        f"  < {GOAL_RSS_MB:g} MB {verdict(rss < GOAL_RSS_MB)}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.poll", description=__doc__)
    parser.add_argument("--rollouts", type=int, default=500)
    parser.add_argument("--metrics", type=int, default=4)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--database", help="a database URL (overrides --db)")
    parser.add_argument(
        "--concurrency", type=int, help="rollouts polled at once (bot.jobs.waves.POLL_CONCURRENCY)"
    )
    parser.add_argument("--role", choices=["bench", "prometheus", "client"], default="bench")
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--text", default="status", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.rollouts <= 10000 or not 1 <= args.metrics <= 20:
        parser.error("--rollouts must be 1..10000 and --metrics 1..20 (a bounded benchmark)")
    if args.role == "prometheus":
        asyncio.run(serve_prometheus())
    elif args.role == "client":
        asyncio.run(send_status(args.url, args.text, every=0.05, limit=4000))
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
