"""Helpers for the improvement-loop flows: a policy with follow-ups gating, signed commands whose
replies are awaited, and the message shortcut payload."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from commands.policy import Policy
from commands.policy_file import builtin_policy
from commands.policy_incidents import FollowUps, Proof, Stakeholders
from tests.conftest import Service, with_channels
from tests.support.incidents import FakeSlackWithHistory

STAKEHOLDERS = "C0STAKE"
SRE = "U0SRE1"


def loop_policy(**update: Any) -> Policy:
    """The blueprint with channels, no checklist (so only follow-ups and proofs gate a start),
    follow-ups gating every class and a stakeholder channel."""
    base = with_channels(builtin_policy())
    values: dict[str, Any] = {
        "checklist": [],
        "followups": FollowUps(gate=True),
        "stakeholders": Stakeholders(channel=STAKEHOLDERS),
        **update,
    }
    return base.model_copy(update=values)


def http_proof(url: str, *, blocks: bool = True) -> Proof:
    return Proof(
        id="backup-route",
        title="Backup provider route",
        kind="http",
        url=url,
        classes=["provider-outage"],
        owner=SRE,
        interval=timedelta(hours=1),
        blocks_rollouts=blocks,
    )


def fake(service: Service) -> FakeSlackWithHistory:
    assert isinstance(service.slack, FakeSlackWithHistory)
    return service.slack


async def say(service: Service, command: str, text: str = "", **kwargs: Any) -> dict[str, Any]:
    """Run a signed slash command; the reply in the ack, or the one sent after it."""
    before = len(fake(service).responses_to())
    response = await service.command(command, text, **kwargs)
    assert response.status == 200
    if response.content_type == "application/json":
        return dict(await response.json())
    return await fake(service).reply(before + 1)


def message_shortcut(
    *, user_id: str, channel_id: str, ts: str, text: str, response_url: str
) -> dict[str, Any]:
    """The `message_action` payload of a message shortcut (callback incident.followup.add)."""
    return {
        "type": "message_action",
        "callback_id": "incident.followup.add",
        "team": {"id": "T0TEST", "domain": "wavegate-test"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0TEST"},
        "channel": {"id": channel_id, "name": "inc"},
        "message": {"type": "message", "user": "U0OTHER", "ts": ts, "text": text},
        "message_ts": ts,
        "response_url": response_url,
        "trigger_id": "1337.44.shortcut",
        "token": "legacy-verification-token",
        "action_ts": "1700000001.000001",
        "api_app_id": "A0WAVE",
    }


def posts_to(service: Service, channel: str) -> list[dict[str, Any]]:
    return [post for post in service.slack.posts() if post["channel"] == channel]


async def api(service: Service, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": "Bearer test-api-token"}
    return await service.http.request(method, f"{service.url}{path}", headers=headers, **kwargs)
