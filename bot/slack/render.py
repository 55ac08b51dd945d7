"""Replies rendered for Slack: the payload of an ack or a `respond()`."""

from __future__ import annotations

from typing import Any

from commands.core import Reply


def slack_payload(reply: Reply) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "text": reply.text,
        "response_type": "in_channel" if reply.in_channel and not reply.error else "ephemeral",
    }
    if reply.blocks:
        payload["blocks"] = reply.blocks
    return payload
