"""Which client serves each `type` of the policy's `sources`."""

from __future__ import annotations

from typing import Any

from bot.sources.demo import DemoSource
from bot.sources.http_json import HttpJsonSource
from bot.sources.prometheus import PrometheusSource
from commands.analysis.measure import MetricSource
from commands.policy import Policy


def build_sources(policy: Policy, **shared: Any) -> dict[str, MetricSource]:
    """A client for every source the policy names. `shared` carries what clients share (the one
    aiohttp ClientSession, a concurrency limit)."""
    clients: dict[str, MetricSource] = {}
    for name, config in policy.sources.items():
        if config.type == "demo":
            clients[name] = DemoSource(config, **shared)
        elif config.type == "prometheus":
            clients[name] = PrometheusSource(config, **shared)
        elif config.type == "http_json":
            clients[name] = HttpJsonSource(config, name=name, **shared)
    return clients
