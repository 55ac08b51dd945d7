"""Test helpers for incidents: a running rollout, Slack event and form payloads, and a fake
Slack that remembers messages so `conversations.history` can read them back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlmodel import Session

from storage.models import Release, ReleaseState, Rollout
from tests.support.signing import signed_headers
from tests.support.slack import FakeSlack


def running_rollout(session: Session, version: str, *, at: datetime, wave: int = 0) -> Rollout:
    """A release rolling out in the default plan, as `/wave start` leaves it."""
    release = Release(
        version=version, state=ReleaseState.rolling_out, created_by="U0RM1", created_at=at
    )
    session.add(release)
    session.flush()
    assert release.id is not None
    rollout = Rollout(
        release_id=release.id,
        plan="default",
        wave_index=wave,
        wave_started_at=at,
        started_by="U0RM1",
        started_at=at,
    )
    session.add(rollout)
    session.commit()
    return rollout


def event_body(event: dict[str, Any]) -> str:
    """An Events API callback, as Slack posts it (JSON) to the same URL as commands."""
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": "T0TEST",
            "api_app_id": "A0WAVE",
            "type": "event_callback",
            "event_id": f"Ev{abs(hash(json.dumps(event, sort_keys=True))) % 10**8:08d}",
            "event_time": 1700000000,
            "event": event,
        }
    )


def json_headers(body: str) -> dict[str, str]:
    return {**signed_headers(body), "Content-Type": "application/json"}


def declare_form_submission(
    *,
    user_id: str,
    incident_class: str | None,
    summary: str | None,
    severity: str | None = None,
    release: str | None = None,
) -> dict[str, Any]:
    """The `view_submission` Slack sends when the declare form is submitted."""

    def select(value: str | None) -> dict[str, Any]:
        option = {"text": {"type": "plain_text", "text": value}, "value": value}
        return {"type": "static_select", "selected_option": option if value else None}

    def text(value: str | None) -> dict[str, Any]:
        return {"type": "plain_text_input", "value": value}

    return {
        "type": "view_submission",
        "team": {"id": "T0TEST", "domain": "wavegate-test"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0TEST"},
        "api_app_id": "A0WAVE",
        "token": "legacy-verification-token",
        "trigger_id": "1337.43.form",
        "view": {
            "id": "V0VIEW",
            "type": "modal",
            "callback_id": "incident.declare",
            "state": {
                "values": {
                    "class": {"value": select(incident_class)},
                    "severity": {"value": select(severity)},
                    "summary": {"value": text(summary)},
                    "release": {"value": text(release)},
                }
            },
        },
    }


@dataclass
class FakeSlackWithHistory(FakeSlack):
    """FakeSlack that also answers `conversations.history` from messages set by the test, and
    lets a test wait for what a lazy listener (run after the ack) does, without sleeping."""

    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _changed: asyncio.Condition | None = None

    async def start(self) -> FakeSlackWithHistory:
        self._changed = asyncio.Condition()
        await super().start()
        return self

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "conversations.history":
            found = self.messages.get((str(args.get("channel")), str(args.get("latest"))))
            return {"messages": [found] if found else [], "has_more": False}
        return super()._answer(method, args)

    async def _api(self, request: web.Request) -> web.Response:
        response = await super()._api(request)
        await self._notify()
        return response

    async def _response(self, request: web.Request) -> web.Response:
        response = await super()._response(request)
        await self._notify()
        return response

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, done: Callable[[], bool]) -> None:
        """Until `done()` holds after some call or response arrived (fails after 5 seconds)."""
        assert self._changed is not None
        async with asyncio.timeout(5), self._changed:
            await self._changed.wait_for(done)

    async def reply(self, count: int = 1, key: str = "1") -> dict[str, Any]:
        """The `count`-th reply sent to the response URL (a command answered after the ack)."""
        await self.wait_for(lambda: len(self.responses_to(key)) >= count)
        return self.responses_to(key)[count - 1]
