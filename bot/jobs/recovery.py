"""Recovery of pending actions: the leader re-sends and settles claims left by a crash or a
shutdown, at once when it starts leading and then periodically (DESIGN §10).

When it starts leading, every claim another process made is taken over: its sender is gone or,
if it lives, leaves settling to the new owner (settles check the owner). Later sweeps take only
claims older than the longest a live send can take (the actuator's timeout for every attempt
and the backoff between them), which covers a task cancelled in this process too.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.interval import IntervalTrigger

from bot.jobs.job import Job
from bot.runtime import Runtime
from commands.wave.rules.recovery import resend, resend_due, take_over
from storage.rollouts import pending_rollouts

log = logging.getLogger(__name__)

RECOVER_EVERY = timedelta(seconds=5)
# Beyond the longest send: clocks of replicas and a slow settle.
MARGIN = timedelta(seconds=5)


def send_deadline(runtime: Runtime) -> timedelta:
    """The longest a live send can take before its sender settles it."""
    config = runtime.policy.actuator
    if config is None:
        return MARGIN
    attempts = config.retries + 1
    backoff = float(getattr(runtime.ports.actuator, "backoff", 0.5))
    waits = sum(backoff * 2**n for n in range(attempts - 1))
    return config.timeout * attempts + timedelta(seconds=waits) + MARGIN


async def recover_pending(runtime: Runtime, *, taking_over: bool) -> list[str]:
    """Take over the claims due for recovery, re-send each and settle it; what happened to each."""
    me = runtime.ports.instance
    deadline = send_deadline(runtime)
    claims = []
    with runtime.unit() as ctx:
        now = ctx.now()
        for rollout, release in pending_rollouts(session=ctx.session):
            since = rollout.pending_since or now
            foreign = rollout.pending_owner != me
            if not ((taking_over and foreign) or now - since > deadline):
                continue
            if not resend_due(rollout, now):
                continue  # its last re-send failed: sent again after its backoff
            claim = take_over(ctx, rollout)
            if claim is not None:
                log.warning(
                    "re-sending the %s of %s left pending since %s (key %s)",
                    claim.action,
                    release.version,
                    since.isoformat(),
                    claim.key,
                )
                claims.append(claim)

    async def one(claim_index: int) -> str:
        with runtime.unit() as ctx:
            return await resend(ctx, claims[claim_index])

    return list(await asyncio.gather(*(one(i) for i in range(len(claims)))))


class Recovery:
    """The job: its first run as leader takes over every other process's claim."""

    def __init__(self) -> None:
        self.led_before = False

    async def run(self, runtime: Runtime) -> None:
        taking_over = not self.led_before
        self.led_before = True
        outcomes = await recover_pending(runtime, taking_over=taking_over)
        if outcomes:
            log.info("recovered pending actions: %s", ", ".join(outcomes))


def jobs(runtime: Runtime) -> list[Job]:
    # The first sweep right after start (not a whole interval later): a restarted leader
    # finishes what its predecessor left at once.
    first = datetime.now(UTC) + timedelta(seconds=0.5)
    trigger = IntervalTrigger(seconds=RECOVER_EVERY.total_seconds(), start_date=first)
    return [Job("actuation-recovery", Recovery().run, trigger)]
