"""`GET /api/v1/rollouts`: every rollout, newest first, for CI and dashboards (DESIGN §1, §9)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.http.api import error, iso
from bot.http.keys import RUNTIME
from commands.policy import Policy
from storage.models import Release, Rollout, RolloutState
from storage.rollouts import list_rollouts

routes = web.RouteTableDef()
STATES = [state.value for state in RolloutState]


def rollout_json(rollout: Rollout, release: Release, policy: Policy) -> dict[str, Any]:
    waves = policy.plans.get(rollout.plan) or []
    wave = waves[rollout.wave_index].name if rollout.wave_index < len(waves) else None
    return {
        "release": release.version,
        "plan": rollout.plan,
        "state": rollout.state,
        "wave": wave,
        "wave_index": rollout.wave_index,
        "wave_started_at": iso(rollout.wave_started_at),
        "verdict": rollout.verdict,
        "pause_kind": rollout.pause_kind,
        "paused_reason": rollout.paused_reason,
        "pending_action": pending_json(rollout),
    }


def pending_json(rollout: Rollout) -> dict[str, Any] | None:
    """The action sent to the deploy system and not settled yet (DESIGN §10), or None."""
    if rollout.pending_action is None:
        return None
    return {
        "action": rollout.pending_action,
        "actor": rollout.pending_actor,
        "since": iso(rollout.pending_since),
        "idempotency_key": rollout.pending_key,
    }


@routes.get("/api/v1/rollouts")
async def get_rollouts(request: web.Request) -> web.Response:
    state = request.query.get("state")
    if state is not None and state not in STATES:
        return error(400, f"state: unknown state {state!r}; states: {', '.join(STATES)}")
    runtime = request.app[RUNTIME]

    def read() -> list[dict[str, Any]]:
        with runtime.unit() as ctx:
            rows = list_rollouts(session=ctx.session, state=state)
            return [rollout_json(r, rel, runtime.policy) for r, rel in rows]

    # On the work loop (bot/work.py), like every unit of work: the HTTP loop stays free.
    return web.json_response({"rollouts": await runtime.work.call(read)})
