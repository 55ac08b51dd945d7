"""The built-in demo metric source: deterministic, healthy values with drift on demand.

Every metric reads a value that passes its conditions, with a small deterministic wobble so
trends show. `drift(metric, value)` pins a metric to a value, to `"error"` (provider down) or to
`"empty"` (no data) — the console's `:drift` and the tests use it.
"""

from __future__ import annotations

import math
from typing import Any

from commands.analysis.measure import Phase, Reading, classify
from commands.policy import DemoSource as DemoConfig
from commands.policy import Metric

# Plausible healthy values for the blueprint's metrics; others are derived from conditions.
HEALTHY = {
    "completion_success_rate": 0.985,
    "preview_startup_p95_ms": 1800.0,
    "migration_error_rate": 0.002,
    "provider_cost_per_generation": 0.09,
    "auth_failure_rate": 0.01,
    "api_request_rate": 120.0,
    "agent_request_rate": 45.0,
    "sandbox_request_rate": 30.0,
}

Drift = float | str


def _passes(metric: Metric, value: float) -> bool:
    return classify(metric, Reading(value=value)).phase == Phase.successful


def healthy_value(metric: Metric) -> float:
    """A value inside the metric's success condition and outside its failure and budget ones."""
    known = HEALTHY.get(metric.id)
    if known is not None and _passes(metric, known):
        return known
    candidates: list[float] = []
    for condition in (metric.success, metric.budget, metric.failure):
        if condition is None:
            continue
        if condition.upper is not None:
            candidates.append((condition.value + condition.upper) / 2)
        bound = condition.value
        step = abs(bound) * 0.1 or 1.0
        candidates += [bound, bound + step, bound - step, bound * 0.5]
    candidates += [0.0, 1.0, 100.0]
    return next((c for c in candidates if _passes(metric, c)), 0.0)


class DemoSource:
    def __init__(self, config: DemoConfig, **_shared: Any) -> None:
        self.seed = config.seed
        self.drifts: dict[str, Drift] = {}
        self._polls: dict[str, int] = {}

    def drift(self, metric_id: str, value: Drift | None) -> None:
        """Pin a metric (a number, "error" or "empty"); None returns it to healthy values."""
        if value is None:
            self.drifts.pop(metric_id, None)
        else:
            self.drifts[metric_id] = value

    def clear(self) -> None:
        self.drifts.clear()

    async def read(self, query: str, *, metric: Metric) -> Reading:
        detail = f"demo source: {metric.id}"
        drift = self.drifts.get(metric.id)
        if drift == "error":
            return Reading(error="demo source: provider unavailable (drift injected)")
        if drift == "empty":
            return Reading(value=None, detail=detail + " (no data, drift injected)")
        if isinstance(drift, float | int):
            return Reading(value=float(drift), detail=detail + " (drift injected)")
        count = self._polls.get(metric.id, 0)
        self._polls[metric.id] = count + 1
        base = healthy_value(metric)
        wobble = 0.01 * math.sin(count * 1.7 + self.seed + len(metric.id))
        value = base * (1 + wobble)
        return Reading(value=value if _passes(metric, value) else base, detail=detail)
