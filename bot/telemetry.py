"""wavegate's own metrics (counters, histograms, scrape-time gauges) in the Prometheus text format.

Counters and the histogram live in one registry for the process; the rollouts-by-state gauge
and the leader flag are read from the database and the runtime at scrape time, so every replica
reports the same rollout counts and exactly one reports `wavegate_leader 1`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from commands.core import Reply
from commands.router import Routed
from storage.db import session_scope
from storage.models import Rollout, RolloutState

REGISTRY = CollectorRegistry(auto_describe=True)

COMMANDS = Counter(
    "wavegate_commands",
    "Slash commands handled, by command (family and subcommand) and outcome.",
    ["command", "outcome"],
    registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "wavegate_command_ack_seconds",
    "Time from a slash command reaching its listener to Slack's acknowledgement being sent "
    "(Slack gives up after 3 s).",
    # Around the 150 ms goal and Slack's 3 s limit.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 3.0),
    registry=REGISTRY,
)
POLLS = Counter(
    "wavegate_polls",
    "Metric polls, by metric source and measurement phase.",
    ["source", "phase"],
    registry=REGISTRY,
)
ALERTS_IGNORED = Counter(
    "wavegate_alerts_ignored",
    "Alertmanager notifications answered 2xx and not acted on, by reason.",
    ["reason"],
    registry=REGISTRY,
)
LOOP_LAG_SECONDS = Histogram(
    "wavegate_event_loop_lag_seconds",
    "How late an event loop woke a task that slept a fixed tick. loop=http: what blocks the "
    "HTTP loop delays every acknowledgement and health check by this much; loop=work: how far "
    "behind the work loop (commands after their ack, jobs, the outbox) runs.",
    ["loop"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
SLACK_ERRORS = Counter(
    "wavegate_slack_api_errors",
    "Slack Web API calls that failed, by method and Slack's error code.",
    ["method", "error"],
    registry=REGISTRY,
)
OUTBOX_DEAD = Counter(
    "wavegate_outbox_dead",
    "Slack posts parked as dead (refused for good, or out of tries), by method and error.",
    ["method", "error"],
    registry=REGISTRY,
)


def observe_command(name: str, outcome: str) -> None:
    COMMANDS.labels(command=name, outcome=outcome).inc()


def observe_alert_ignored(reason: str) -> None:
    ALERTS_IGNORED.labels(reason=reason).inc()


def observe_ack(seconds: float) -> None:
    ACK_SECONDS.observe(seconds)


def observe_poll(source: str, phase: str) -> None:
    POLLS.labels(source=source, phase=phase).inc()


def observe_loop_lag(loop: str, seconds: float) -> None:
    LOOP_LAG_SECONDS.labels(loop=loop).observe(seconds)


# How often the loop-lag watcher wakes (seconds): often enough to catch a stall of one command,
# rarely enough to cost nothing.
LOOP_LAG_TICK = 0.25


async def watch_loop_lag(loop: str, tick: float = LOOP_LAG_TICK) -> None:
    """Sleep `tick` again and again on the running loop (named `loop` in the histogram) and
    record how late each wake-up came; runs until cancelled."""
    LOOP_LAG_SECONDS.labels(loop=loop)  # the series exists, at zero, from the start
    while True:
        started = time.perf_counter()
        await asyncio.sleep(tick)
        observe_loop_lag(loop, max(0.0, time.perf_counter() - started - tick))


def observe_slack_error(method: str, error: str) -> None:
    SLACK_ERRORS.labels(method=method, error=error).inc()


def observe_outbox_dead(method: str, error: str) -> None:
    OUTBOX_DEAD.labels(method=method, error=error).inc()


def observe_reply(routed: Routed, reply: Reply) -> None:
    observe_command(routed.name, reply.outcome)


# ---------------------------------------------------------------- read at scrape time


class RolloutsByState(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "wavegate_rollouts", "Rollouts by state (from the database).", labels=["state"]
        )
        with session_scope(self.engine) as session:
            query = select(Rollout.state, func.count(col(Rollout.id))).group_by(Rollout.state)
            counts = dict(session.exec(query).all())
        for state in RolloutState:
            gauge.add_metric([state.value], float(counts.get(state.value, 0)))
        yield gauge


class Leading(Collector):
    def __init__(self, leading: bool) -> None:
        self.leading = leading

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "wavegate_leader",
            "1 when this replica leads (runs the scheduled jobs and delivers Slack posts).",
        )
        gauge.add_metric([], 1.0 if self.leading else 0.0)
        yield gauge


def exposition(engine: Engine, *, leading: bool) -> bytes:
    """The whole /metrics body: process counters, then what is read now."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(RolloutsByState(engine))
    scrape.register(Leading(leading))
    return generate_latest(REGISTRY) + generate_latest(scrape)
