"""The actuator webhook: wavegate tells the deploy system to change exposure (DESIGN §1).

`POST <actuator.url>` with the JSON body of an `Actuation`, signed with
`X-Wavegate-Signature: v1=<hex HMAC-SHA256 of "v1:{timestamp}:{body}">`. Non-2xx, connection
errors and timeouts are retried with exponential backoff; every retry carries the same
`idempotency_key`, so the deploy system can drop a duplicate. The caller holds no database
transaction, connection or lock while this runs (DESIGN §10: claim, call, settle). A failure
is summarised as status and reason phrase: the deploy system's body is never passed on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Mapping
from http import HTTPStatus

import aiohttp

from commands.policy import Actuator as ActuatorConfig
from commands.policy import Policy
from commands.ports import Actuation, ActuatorFailed

log = logging.getLogger(__name__)


def signature(secret: str, timestamp: int, body: str) -> str:
    mac = hmac.new(secret.encode(), f"v1:{timestamp}:{body}".encode(), hashlib.sha256)
    return "v1=" + mac.hexdigest()


class WebhookActuator:
    def __init__(self, config: ActuatorConfig, secret: str | None, *, backoff: float = 0.5) -> None:
        self.config = config
        self.secret = secret
        # Seconds before the first retry; doubled for each further one.
        self.backoff = backoff

    async def send(self, actuation: Actuation) -> None:
        if not self.secret:
            raise ActuatorFailed(
                f"the actuator secret is not set (environment variable {self.config.secret_env})",
                attempts=0,
            )
        body = actuation.json()
        attempts = self.config.retries + 1
        timeout = aiohttp.ClientTimeout(total=self.config.timeout.total_seconds())
        problem = "no attempt made"
        for attempt in range(1, attempts + 1):
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Wavegate-Timestamp": str(timestamp),
                "X-Wavegate-Signature": signature(self.secret, timestamp, body),
            }
            try:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as http,
                    http.post(self.config.url, data=body, headers=headers) as response,
                ):
                    if 200 <= response.status < 300:
                        return
                    problem = status_summary(response.status)
            except TimeoutError:
                problem = f"no answer within {self.config.timeout.total_seconds():g}s"
            except aiohttp.ClientError as exc:
                problem = f"connection failed ({type(exc).__name__})"
            log.warning(
                "actuator %s of %s failed (attempt %d of %d): %s",
                actuation.action,
                actuation.release,
                attempt,
                attempts,
                problem,
            )
            if attempt < attempts:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        raise ActuatorFailed(problem, attempts=attempts)


def status_summary(status: int) -> str:
    """`HTTP 503 Service Unavailable`: the standard phrase, not the server's own words (its
    body or reason line could carry anything into Slack)."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def build_actuator(
    policy: Policy, *, env: Mapping[str, str] | None = None, backoff: float = 0.5
) -> WebhookActuator | None:
    """The webhook client the policy asks for; None when it names no actuator (local success)."""
    if policy.actuator is None:
        return None
    environ = os.environ if env is None else env
    return WebhookActuator(
        policy.actuator, environ.get(policy.actuator.secret_env), backoff=backoff
    )
