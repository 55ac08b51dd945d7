"""The HTTP fast path: a signed command that answers in the ack is answered ahead of Bolt,
exactly as Bolt's listener answers it; anything unsigned is still refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from slack_bolt.response import BoltResponse

from bot.http.keys import BOLT, LISTENERS
from tests.conftest import Service
from tests.support.waves import start

COMMANDS = [
    ("/ops", "help"),
    ("/wave", "status nonsense words"),  # a usage error
    ("/wave", "status"),
    ("/wave", "status 1.0"),
]


def bolt_counter(service: Service) -> list[str]:
    """The slash commands that reached Bolt, seen by a middleware of its own."""
    seen: list[str] = []

    async def count(body: dict[str, Any], next: Callable[[], Awaitable[BoltResponse]]) -> None:
        seen.append(str(body.get("command", "")))
        await next()

    service.app[BOLT].middleware(count)
    return seen


async def answer(service: Service, command: str, text: str) -> tuple[int, str, Any]:
    response = await service.command(command, text)
    return response.status, response.content_type, await response.json()


@pytest.mark.parametrize(("command", "text"), COMMANDS)
async def test_a_read_only_command_is_answered_ahead_of_bolt_as_bolt_answers_it(
    service: Service, command: str, text: str
) -> None:
    with service.runtime.unit() as ctx:
        await start(ctx, "1.0")
    seen = bolt_counter(service)
    listeners = service.app[LISTENERS]
    # The first command goes through Bolt (its token check), and so does one after the flag
    # is cleared; once Bolt has authorized one, commands that answer in the ack skip it.
    by_bolt = await answer(service, command, text)
    assert seen == [command]
    assert listeners.token_checked
    by_fast_path = await answer(service, command, text)
    assert seen == [command]
    assert by_fast_path == by_bolt
    status, content_type, body = by_bolt
    assert status == 200
    assert content_type == "application/json"
    assert set(body) >= {"text", "response_type"}


async def test_the_answers_read_what_the_command_asked(service: Service) -> None:
    await service.command("/wave", "status")
    assert service.app[LISTENERS].token_checked
    help_text = (await answer(service, "/ops", "help"))[2]["text"]
    assert help_text.startswith("*wavegate*")
    usage = (await answer(service, "/wave", "status a b"))[2]
    assert usage["response_type"] == "ephemeral"
    assert "Usage: `/wave status" in usage["text"]
    empty = (await answer(service, "/wave", "status"))[2]["text"]
    assert empty.startswith("No rollout is active.")


async def test_a_forged_command_is_refused_on_the_fast_path_too(service: Service) -> None:
    seen = bolt_counter(service)
    assert (await service.command("/wave", "status")).status == 200
    assert service.app[LISTENERS].token_checked
    forged = await service.command("/wave", "status", secret="not-the-signing-secret")
    assert forged.status == 401
    stale = await service.command("/wave", "status", timestamp=1_000_000_000)
    assert stale.status == 401
    assert seen == ["/wave"]


async def test_a_command_answered_after_the_ack_is_acked_empty_without_bolt(
    service: Service,
) -> None:
    seen = bolt_counter(service)
    await service.command("/wave", "status")
    response = await service.command("/wave", "start 9.9")
    assert response.status == 200
    assert await response.text() == ""
    await service.app[LISTENERS].drain(5)
    assert seen == ["/wave"]
    # Routed once, by the fast path, acked empty, and answered through response_url by the
    # work on the work loop.
    assert any("9.9" in str(text) for _, text in service.slack.responses)
