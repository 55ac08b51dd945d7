"""Slack request signing for tests: the same HMAC Slack computes, via slack_sdk's verifier."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

SIGNING_SECRET = "test-signing-secret"


def signed_headers(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature or "",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slash_body(
    command: str,
    text: str = "",
    *,
    user_id: str = "U0RM1",
    channel_id: str = "C0WORK",
    response_url: str = "",
    trigger_id: str = "1337.42.abcd",
) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T0TEST",
            "team_domain": "wavegate-test",
            "channel_id": channel_id,
            "channel_name": "work",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0WAVE",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def interaction_body(payload: dict[str, Any]) -> str:
    """Buttons, modals and shortcuts arrive as a form field `payload` holding JSON."""
    return urlencode({"payload": json.dumps(payload)})


def block_action(
    action_id: str,
    value: str,
    *,
    user_id: str = "U0RM1",
    channel_id: str = "C0ROLLOUTS",
    response_url: str = "",
    message_ts: str = "1700000000.000001",
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": "T0TEST", "domain": "wavegate-test"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0TEST"},
        "api_app_id": "A0WAVE",
        "token": "legacy-verification-token",
        "trigger_id": "1337.42.abcd",
        "channel": {"id": channel_id, "name": "rollouts"},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id},
        "message": {"ts": message_ts, "text": ""},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b",
                "value": value,
                "action_ts": "1700000001.000001",
            }
        ],
    }
