"""Mentions as Slack sends them with `should_escape: true`, over real HTTP: `/incident lead`
takes `<@U…|name>` and `<@U…>`, and a plain `@name` Slack could not resolve is refused."""

from __future__ import annotations

from typing import Any

from bot.http.keys import LISTENERS
from tests.conftest import COMMANDER, DEVELOPER, Service


async def incident(service: Service, text: str, user: str = DEVELOPER) -> str:
    """Run `/incident TEXT`; the text of the reply (in the ack or sent after it)."""
    before = len(service.slack.responses_to())
    response = await service.command("/incident", text, user=user)
    assert response.status == 200
    if response.content_type == "application/json":
        body: dict[str, Any] = await response.json()
        if body.get("text"):
            return str(body["text"])
    await service.app[LISTENERS].drain(5)
    return str(service.slack.responses_to()[before]["text"])


async def test_lead_takes_an_escaped_mention_and_invites_that_user(service: Service) -> None:
    declared = await incident(service, "declare provider-outage the provider times out")
    assert declared.startswith("Declared incident #1")
    reply = await incident(service, f"lead #1 <@{COMMANDER}|ana>")
    assert reply == f"<@{COMMANDER}> leads incident #1 now."
    invites = service.slack.calls_to("conversations.invite")
    assert COMMANDER in str(invites[-1].args["users"])
    assert (await incident(service, f"lead #1 <@{DEVELOPER}>")) == (
        f"<@{DEVELOPER}> leads incident #1 now."
    )


async def test_an_unresolved_at_name_is_refused_and_changes_nothing(service: Service) -> None:
    await incident(service, "declare provider-outage the provider times out")
    invites = len(service.slack.calls_to("conversations.invite"))
    reply = await incident(service, "lead #1 @ana")
    assert "'@ana' is not a Slack user" in reply
    assert len(service.slack.calls_to("conversations.invite")) == invites
