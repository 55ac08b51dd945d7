"""Clocks: the system's, and a fast-forwarded one for the console's `--speed`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class SpeedClock:
    """Time that passes `factor` times faster than the wall clock, from the moment it is made."""

    def __init__(self, factor: float) -> None:
        if factor <= 0:
            raise ValueError("speed must be positive")
        self.factor = factor
        self._start_wall = datetime.now(UTC)
        self._start = time.monotonic()

    def __call__(self) -> datetime:
        elapsed = (time.monotonic() - self._start) * self.factor
        return self._start_wall + timedelta(seconds=elapsed)
