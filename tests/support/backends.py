"""Real backends for integration tests: an exporter the test controls, Prometheus, Alertmanager.

    async with running_stack(tmp_path, rules=RULES) as stack:     # or the `stack` fixture
        stack.exporter.set("http_requests_total", 120, code="500", release="1.0")
        await stack.prometheus.wait_for_value('sum(http_requests_total{code="500"})', 120)
        await stack.webhook.wait_for(lambda body: body["status"] == "firing", what="an alert")

The binaries are Debian's packages (`/usr/bin/prometheus`, `/usr/bin/prometheus-alertmanager`),
started on 127.0.0.1 with temporary configs and storage under the test's tmp_path; the fixtures
skip with a message when a binary is missing and always stop every process at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

T = TypeVar("T")
P = TypeVar("P", bound="Process")

INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager"
# Every wait is bounded: scrapes, rule evaluations and notifications take seconds, not minutes.
DEADLINE = 30.0
POLL = 0.2


async def wait_until(
    check: Callable[[], Awaitable[T | None]], *, what: str, within: float = DEADLINE
) -> T:
    """Poll `check` until it returns something other than None; fail saying `what` after
    `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within:g} s waiting for {what}")
        await asyncio.sleep(POLL)


def free_port() -> int:
    """A port nothing listens on right now (the binaries take a port number, not 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_refuses(port: int) -> bool:
    """True when a TCP connection to 127.0.0.1:port is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


# ---------------------------------------------------------------- the exporter


def _labels_text(labels: Mapping[str, str]) -> str:
    """`{code="500",release="1.0"}`, label values escaped as the text format requires."""
    if not labels:
        return ""

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items())) + "}"


def _value_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass
class Exporter:
    """An aiohttp `/metrics` endpoint on 127.0.0.1 whose samples the test sets at any time.

    Names ending in `_total` are typed counters, others gauges; `set_histogram` writes the
    `_bucket{le=…}`, `_sum` and `_count` series of a histogram. `scrapes` counts the GETs.
    """

    url: str = ""
    target: str = ""  # host:port, as a Prometheus static target
    scrapes: int = 0
    _samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    _types: dict[str, str] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set one series (name plus labels) to `value`."""
        kind = "counter" if name.endswith("_total") else "gauge"
        self._types.setdefault(name, kind)
        self._samples.setdefault(name, {})[tuple(sorted(labels.items()))] = float(value)

    def remove(self, name: str, **labels: str) -> None:
        """Stop exposing one series (Prometheus marks it stale at the next scrape)."""
        self._samples.get(name, {}).pop(tuple(sorted(labels.items())), None)

    def set_histogram(
        self, name: str, buckets: Mapping[float, int], *, total: float, **labels: str
    ) -> None:
        """A histogram from cumulative bucket counts by upper bound; +Inf is added if missing."""
        self._types[name] = "histogram"
        counts = dict(sorted(buckets.items()))
        counts.setdefault(math.inf, max(counts.values(), default=0))
        for bound, count in counts.items():
            self._samples.setdefault(f"{name}_bucket", {})[
                tuple(sorted({**labels, "le": _value_text(bound)}.items()))
            ] = float(count)
        key = tuple(sorted(labels.items()))
        self._samples.setdefault(f"{name}_sum", {})[key] = float(total)
        self._samples.setdefault(f"{name}_count", {})[key] = float(counts[math.inf])

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        for family, kind in sorted(self._types.items()):
            lines.append(f"# TYPE {family} {kind}")
            names = (
                [f"{family}_bucket", f"{family}_sum", f"{family}_count"]
                if kind == "histogram"
                else [family]
            )
            for name in names:
                for key, value in sorted(self._samples.get(name, {}).items()):
                    lines.append(f"{name}{_labels_text(dict(key))} {_value_text(value)}")
        return "\n".join(lines) + "\n"

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        return web.Response(
            text=self.render(), content_type="text/plain", headers={"X-Exporter": "test"}
        )

    async def start(self) -> Exporter:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.target = f"127.0.0.1:{port}"
        self.url = f"http://{self.target}/metrics"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# ---------------------------------------------------------------- a webhook receiver


@dataclass
class WebhookReceiver:
    """An aiohttp endpoint on 127.0.0.1 that records every JSON body POSTed to `/hook`."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.Response(status=200)

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], *, what: str, within: float = DEADLINE
    ) -> dict[str, Any]:
        """The first received body (old or new) that `match` accepts."""

        async def found() -> dict[str, Any] | None:
            return next((body for body in self.received if match(body)), None)

        return await wait_until(found, what=what, within=within)

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# ---------------------------------------------------------------- the binaries


def find_binary(*names: str) -> str | None:
    """The first of `names` on PATH (Debian calls Alertmanager `prometheus-alertmanager`)."""
    return next((path for name in names if (path := shutil.which(name))), None)


@dataclass
class Process:
    """One backend binary on 127.0.0.1:port; `stop()` and `restart()` keep the same port."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """The binary's stderr and stdout so far (shown when it does not become ready)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def spawn(self) -> None:
        """Start the binary, its output appended to `log_path`; `start` also waits for ready."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    async def start(self) -> Process:
        self.spawn()
        await self.wait_ready()
        return self

    async def wait_ready(self) -> None:
        async def ready() -> bool | None:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()[-3000:]}"
                )
            with contextlib.suppress(aiohttp.ClientError):
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"{self.url}/-/ready", timeout=aiohttp.ClientTimeout(2)) as resp,
                ):
                    return True if resp.status == 200 else None
            return None

        await wait_until(ready, what=f"{self.name} /-/ready on {self.url}")

    def stop(self) -> None:
        """Terminate (SIGTERM), then kill after 5 s; safe to call twice."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    async def restart(self) -> None:
        self.stop()
        await self.start()

    async def get_json(self, path: str, **params: str) -> tuple[int, dict[str, Any]]:
        """GET `path` with query parameters; the HTTP status and the JSON body."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}{path}", params=params, timeout=aiohttp.ClientTimeout(5)) as resp,
        ):
            return resp.status, await resp.json(content_type=None)


@dataclass
class Prometheus(Process):
    config_path: Path = Path()

    async def query(self, promql: str) -> tuple[int, dict[str, Any]]:
        """`/api/v1/query` as Prometheus answers it: HTTP status and the JSON document."""
        return await self.get_json("/api/v1/query", query=promql)

    async def query_range(
        self, promql: str, *, seconds: float, step: str = "1s"
    ) -> list[tuple[float, float]]:
        """The one series' (time, value) samples over the last `seconds`."""
        end = time.time()
        status, body = await self.get_json(
            "/api/v1/query_range", query=promql, start=str(end - seconds), end=str(end), step=step
        )
        assert status == 200, body
        result = body["data"]["result"]
        assert len(result) <= 1, f"{promql} gave {len(result)} series"
        return [(float(t), float(v)) for t, v in result[0]["values"]] if result else []

    async def value(self, promql: str) -> float | None:
        """The one sample of an instant query, or None while the result is empty."""
        status, body = await self.query(promql)
        assert status == 200, body
        result = body["data"]["result"]
        assert len(result) <= 1, f"{promql} gave {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    async def wait_for_value(
        self, promql: str, expected: float | None = None, *, within: float = DEADLINE
    ) -> float:
        """Poll until the query has a value (equal to `expected` when given): scrapes and rule
        evaluations take a moment."""

        async def check() -> float | None:
            found = await self.value(promql)
            return found if found is not None and expected in (None, found) else None

        wanted = "a value" if expected is None else f"value {expected:g}"
        return await wait_until(check, what=f"{wanted} for {promql}", within=within)


def require_binary(*names: str) -> str:
    """The binary's path, or skip the test saying how to install it."""
    path = find_binary(*names)
    if path is None:
        pytest.skip(
            f"{' / '.join(names)} not installed: {INSTALL_HINT} "
            "(Debian packages; the real-backend tests need both on PATH)"
        )
    return path


async def _launch(process: P) -> P:
    try:
        await process.start()
    except BaseException:
        process.stop()  # a binary that never became ready is still stopped
        raise
    return process


async def start_prometheus(
    tmp_path: Path,
    *,
    targets: Sequence[str],
    rules: str | Mapping[str, Any] | None = None,
    alertmanager: Process | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
) -> Prometheus:
    """A real Prometheus on 127.0.0.1 scraping `targets` (host:port), with an optional rule file
    and Alertmanager, its config and TSDB under `tmp_path`; ready when this returns."""
    binary = require_binary("prometheus")
    port = free_port()
    home = tmp_path / f"prometheus-{port}"
    home.mkdir(parents=True)
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "scrape_configs": [
            {"job_name": "exporter", "static_configs": [{"targets": list(targets)}]}
        ],
    }
    if rules is not None:
        rule_path = home / "rules.yml"
        rule_path.write_text(rules if isinstance(rules, str) else yaml.safe_dump(dict(rules)))
        config["rule_files"] = [str(rule_path)]
    if alertmanager is not None:
        am_target = {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}
        config["alerting"] = {"alertmanagers": [am_target]}
    config_path = home / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--storage.tsdb.path={home / 'data'}",
        # Without it links (an alert's generatorURL) name the host's hostname, not loopback.
        f"--web.external-url=http://127.0.0.1:{port}/",
    ]
    prom = Prometheus(
        name="prometheus", argv=argv, port=port, log_path=home / "log", config_path=config_path
    )
    return await _launch(prom)


async def start_alertmanager(
    tmp_path: Path,
    *,
    webhook_url: str,
    group_by: Sequence[str] = ("alertname",),
    group_wait: str = "1s",
    group_interval: str = "2s",
    repeat_interval: str = "1h",
) -> Process:
    """A real single-node Alertmanager on 127.0.0.1 that sends every group to `webhook_url`
    (resolved notifications included); ready when this returns."""
    binary = require_binary("prometheus-alertmanager", "alertmanager")
    port = free_port()
    home = tmp_path / f"alertmanager-{port}"
    home.mkdir(parents=True)
    config = {
        "route": {
            "receiver": "webhook",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {"name": "webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
        ],
    }
    config_path = home / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config))
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Empty turns clustering off; by default it gossips on 0.0.0.0:9094.
        "--cluster.listen-address=",
        f"--web.external-url=http://127.0.0.1:{port}/",
    ]
    return await _launch(Process(name="alertmanager", argv=argv, port=port, log_path=home / "log"))


@dataclass
class Backends:
    """Starts real binaries for one test under its tmp_path and stops them all at the end."""

    tmp_path: Path
    started: list[Process] = field(default_factory=list)

    async def start_prometheus(self, **kwargs: Any) -> Prometheus:
        prom = await start_prometheus(self.tmp_path, **kwargs)
        self.started.append(prom)
        return prom

    async def start_alertmanager(self, **kwargs: Any) -> Process:
        am = await start_alertmanager(self.tmp_path, **kwargs)
        self.started.append(am)
        return am

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


@dataclass(frozen=True)
class Stack:
    """Exporter → Prometheus (rules) → Alertmanager → webhook receiver, all on loopback."""

    exporter: Exporter
    prometheus: Prometheus
    alertmanager: Process
    webhook: WebhookReceiver


@contextlib.asynccontextmanager
async def running_stack(
    tmp_path: Path, *, rules: str | Mapping[str, Any] | None = None
) -> AsyncIterator[Stack]:
    """The whole chain, started once and stopped on exit (even when a start fails). Prometheus
    applies new scrape and Alertmanager targets only on a 5 s tick, so this waits for the first
    scrape: tests that share a stack do not each pay those seconds."""
    require_binary("prometheus")  # name the first missing binary before starting anything
    require_binary("prometheus-alertmanager", "alertmanager")
    async with contextlib.AsyncExitStack() as cleanup:
        exporter = await Exporter().start()
        cleanup.push_async_callback(exporter.stop)
        webhook = await WebhookReceiver().start()
        cleanup.push_async_callback(webhook.stop)
        alertmanager = await start_alertmanager(tmp_path, webhook_url=webhook.url)
        cleanup.callback(alertmanager.stop)
        prometheus = await start_prometheus(
            tmp_path, targets=[exporter.target], rules=rules, alertmanager=alertmanager
        )
        cleanup.callback(prometheus.stop)
        await prometheus.wait_for_value(f'up{{instance="{exporter.target}"}}', 1)
        yield Stack(exporter, prometheus, alertmanager, webhook)


# ---------------------------------------------------------------- fixtures
# A test module that uses `stack` runs its tests in the module's event loop (the exporter and
# the receiver are served by it):  pytestmark = pytest.mark.asyncio(loop_scope="module")
# and overrides `stack_rules` to give Prometheus its rule file.


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[Backends]:
    """Starts Prometheus / Alertmanager for one test (skips where a binary is missing)."""
    started = Backends(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture(scope="module")
def stack_rules() -> str | Mapping[str, Any] | None:
    """Prometheus's rule file for the module's `stack`: none unless the module says so."""
    return None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, stack_rules: str | Mapping[str, Any] | None
) -> AsyncIterator[Stack]:
    """Exporter → Prometheus → Alertmanager → webhook receiver, shared by a module's tests."""
    async with running_stack(tmp_path_factory.mktemp("backends"), rules=stack_rules) as running:
        yield running
