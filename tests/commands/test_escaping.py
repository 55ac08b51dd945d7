"""Hostile free text never makes wavegate speak for its author: no `@here`, `@channel`,
`@everyone`, group mention or typed link reaches Slack, whatever command, reason, summary,
evidence or alert carries it (DESIGN §11)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from bot.console.chat import ConsoleIncidentChat
from bot.console.text import plain_text
from commands.core import Context, Reply, Request
from commands.policy import Policy
from commands.policy_file import builtin_policy
from commands.ports import Actuation, ActuatorFailed, Ports
from commands.router import dispatch
from storage.db import make_engine
from storage.models import OutboxPost
from tests.conftest import COMMANDER, MANAGER, Service, create_schema, with_channels
from tests.support.clock import FakeClock
from tests.support.incidents import FakeSlackWithHistory

# What Slack turns into a broadcast, a group ping or a link with a label of the sender's.
FORBIDDEN = ("<!here", "<!channel", "<!everyone", "<!subteam^", "<http")

PIECES = [
    "<!here>",
    "<!channel>",
    "<!everyone>",
    "<!subteam^S123|x>",
    "<!subteam^S123>",
    "<https://evil.example/sso|re-login here>",
    "<http://evil.example>",
    "<@U0RM1>",
    "&",
    "&lt;!here&gt;",
    "<",
    ">",
    "re-login",
]
hostile = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(alphabet="ab <>!&|^@:/", max_size=12)),
    min_size=1,
    max_size=6,
).map(" ".join)
POLICY = with_channels(builtin_policy())
# Each example carries at least one piece Slack would act on.
dangerous = st.tuples(hostile, st.sampled_from(PIECES[:7]), hostile).map(" ".join)


def leaks(texts: list[str]) -> list[str]:
    return [text for text in texts if any(bad in text for bad in FORBIDDEN)]


# A button's `value` comes back to us and is never shown; a text input's `initial_value` is
# plain text, shown as typed, never read as mrkdwn.
NOT_SHOWN = {"value", "initial_value"}


def _visible(blocks: Any) -> Any:
    if isinstance(blocks, dict):
        return {k: _visible(v) for k, v in blocks.items() if k not in NOT_SHOWN}
    if isinstance(blocks, list):
        return [_visible(v) for v in blocks]
    return blocks


def shown(blocks: Any) -> str:
    """Blocks (or a call's arguments) as Slack shows them."""
    return json.dumps(_visible(blocks))


def reply_texts(reply: Reply) -> list[str]:
    return [reply.text, shown(reply.blocks or [])]


class RecordingChat(ConsoleIncidentChat):
    """The console's chat port, keeping what it would send: topics and forms."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        super().__init__(self.sent.append)

    async def open_modal(self, trigger_id: str | None, view: dict[str, Any]) -> bool:
        self.sent.append(shown(view))
        return False


async def drive(policy: Policy, text: str) -> list[str]:
    """Every command that takes free text, with `text` as its free text; all it queued for
    Slack, replied, set as a topic or showed in a form."""
    engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'escaping.db'}")
    create_schema(engine)
    chat = RecordingChat()
    seen: list[str] = []
    try:
        with Session(engine, expire_on_commit=False) as session:
            ctx = Context(session=session, policy=policy, clock=FakeClock(), ports=Ports(chat=chat))

            async def run(line: str, user: str = MANAGER) -> None:
                command, _, rest = line.partition(" ")
                reply = await dispatch(Request(command, rest, user, channel_id="C0WORK"), ctx)
                seen.extend(reply_texts(reply))

            await run("/ready new 1.0.0")
            await run(f"/ready fail 1.0.0 observability {text}")
            await run(f"/ready waive 1.0.0 migration-rollback {text}")
            await run(f"/ready check 1.0.0 concurrency https://ci.example/1 {text}")
            await run(f"/ready check 1.0.0 {text}")
            await run(f"/ready {text}")
            await run("/ready 1.0.0")
            for item in policy.checklist:
                await run(f"/ready waive 1.0.0 {item.id} {text}")
            await run("/wave start 1.0.0")
            await run(f"/wave pause 1.0.0 {text}")
            await run("/wave status 1.0.0")
            await run("/wave history 1.0.0")
            await run(f"/wave {text}")
            await run(f"/rollback 1.0.0 {text}")
            await run(f"/incident declare provider-outage sev2 {text}", COMMANDER)
            await run(f"/incident declare {text}", COMMANDER)
            await run(f"/incident status #1 {text}", COMMANDER)
            await run("/incident", COMMANDER)
            await run(f"/incident resolve #1 {text}", COMMANDER)
            await run(f"/incident {text}", COMMANDER)
            for post in session.exec(select(OutboxPost)).all():
                seen += [post.text, shown(json.loads(post.blocks or "[]"))]
    finally:
        engine.dispose()
    return seen + chat.sent


# Each example runs ~25 commands on a fresh database (about a second): no shrinking, a failure
# shows the text as generated.
@settings(max_examples=20, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(text=dangerous)
def test_hostile_text_never_reaches_slack_as_markup(text: str) -> None:
    seen = asyncio.run(drive(POLICY, text))
    assert len(seen) > 40  # every command answered and posted something
    assert leaks(seen) == []


def test_escaped_text_reads_as_typed_in_the_console() -> None:
    typed = "<!here> see <https://evil.example/sso|re-login here> & more"
    seen = asyncio.run(drive(POLICY, typed))
    assert any("&lt;!here&gt;" in text for text in seen)
    status = next(text for text in seen if "paused by hand" in text and "*1.0.0*" in text)
    assert typed in plain_text(status)


# ---------------------------------------------------------------- over HTTP, to the fake Slack

HOSTILE = "<!here> <!channel> <!everyone> <!subteam^S123|x> <https://evil.example/sso|re-login>"
AUTH = {"Authorization": "Bearer test-api-token"}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackWithHistory]:
    fake = await FakeSlackWithHistory().start()
    yield fake
    await fake.stop()


def everything_slack_received(service: Service) -> list[str]:
    calls = [shown(call.args) for call in service.slack.calls]
    return calls + [shown(body) for _, body in service.slack.responses]


async def slash(service: Service, command: str, text: str, *, user: str = MANAGER) -> None:
    """A slash command through Bolt; waits for its answer, in the ack or after it."""
    assert isinstance(service.slack, FakeSlackWithHistory)
    before = len(service.slack.responses_to())
    response = await service.command(command, text, user=user)
    assert response.status == 200
    if response.content_type == "application/json":
        service.slack.responses.append(("ack", await response.json()))
    else:
        await service.slack.reply(before + 1)


async def test_hostile_text_over_slack_and_the_api_reaches_slack_escaped(
    service: Service,
) -> None:
    http, url = service.http, service.url
    await slash(service, "/ready", "new 1.0.0")
    await slash(service, "/ready", f"fail 1.0.0 observability {HOSTILE}")
    response = await http.post(
        f"{url}/api/v1/checks",
        json={"release": "1.0.0", "item": "concurrency", "status": "passed", "evidence": HOSTILE},
        headers=AUTH,
    )
    assert response.status == 201
    response = await http.post(
        f"{url}/api/v1/checks",
        json={"release": HOSTILE[:100], "item": "concurrency", "status": "passed"},
        headers=AUTH,
    )
    assert response.status == 404
    await slash(service, "/ready", f"{HOSTILE}")
    await slash(service, "/incident", f"declare provider-outage sev2 {HOSTILE}", user=COMMANDER)
    await slash(service, "/incident", f"status #1 {HOSTILE}", user=COMMANDER)
    alert = {
        "version": "4",
        "groupKey": "hostile",
        "status": "firing",
        "commonLabels": {"incident_class": "provider-outage", "alertname": HOSTILE},
        "commonAnnotations": {"summary": HOSTILE},
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": HOSTILE, "incident_class": "provider-outage"},
                "annotations": {"summary": HOSTILE, "description": HOSTILE},
            }
        ],
    }
    assert (await http.post(f"{url}/api/v1/alerts", json=alert, headers=AUTH)).status == 201
    assert (await http.post(f"{url}/api/v1/alerts", json=alert, headers=AUTH)).status == 200
    await slash(service, "/incident", f"resolve #1 {HOSTILE}", user=COMMANDER)
    while await service.delivery.deliver_due():
        pass
    received = everything_slack_received(service)
    assert len(service.slack.calls_to("conversations.setTopic")) >= 3
    assert len(service.slack.posts()) >= 8
    assert leaks(received) == []
    # What was typed is there, escaped, so people read it as written.
    assert any("&lt;!here&gt;" in text for text in received)


class HostileDeploySystem:
    """A deploy system whose error body is hostile HTML-ish text."""

    async def send(self, actuation: Actuation) -> None:
        raise ActuatorFailed(f"HTTP 502: {HOSTILE} <html>&nbsp;</html>", attempts=3)


async def test_a_deploy_system_error_reaches_slack_escaped() -> None:
    engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'actuator.db'}")
    create_schema(engine)
    seen: list[str] = []
    try:
        with Session(engine, expire_on_commit=False) as session:
            ctx = Context(session=session, policy=POLICY, clock=FakeClock())
            for line in [
                "/ready new 1.0.0",
                *(f"/ready waive 1.0.0 {i.id} ok" for i in POLICY.checklist),
            ]:
                command, _, rest = line.partition(" ")
                await dispatch(Request(command, rest, MANAGER), ctx)
            await dispatch(Request("/wave", "start 1.0.0", MANAGER), ctx)
            ctx.ports.actuator = HostileDeploySystem()
            reply = await dispatch(Request("/wave", "pause 1.0.0 now", MANAGER), ctx)
            assert reply.error
            seen += reply_texts(reply)
            for post in session.exec(select(OutboxPost)).all():
                seen += [post.text, shown(json.loads(post.blocks or "[]"))]
    finally:
        engine.dispose()
    assert any("HTTP 502" in text and "&lt;!here&gt;" in text for text in seen)
    assert leaks(seen) == []
    assert not any("<html>" in text for text in seen)
