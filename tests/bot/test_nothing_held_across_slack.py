"""No pooled connection (so no transaction, no SQLite write lock) is held while Slack makes an
incident's channel or opens the declare form: the fake Slack holds `conversations.create` and
`views.open` and reads the pool meanwhile, on SQLite and PostgreSQL, for the slash command, the
form and an Alertmanager notification."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, select

from storage.models import Incident
from tests.conftest import COMMANDER, Service
from tests.support.incidents import declare_form_submission
from tests.support.signing import interaction_body
from tests.support.slack import Call, FakeSlack


def checked_out_while_held(slack: FakeSlack, engine: Engine, *methods: str) -> list[int]:
    """The connections checked out of `engine`'s pool at each held call of `methods`."""
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    seen: list[int] = []

    async def hold(_: Call) -> None:
        await asyncio.sleep(0.05)  # a slow Slack: the caller has moved on to waiting
        seen.append(pool.checkedout())

    for method in methods:
        slack.holds[method] = hold
    return seen


def incidents(engine: Engine) -> list[Incident]:
    with Session(engine) as session:
        return list(session.exec(select(Incident)))


async def test_the_declare_command_holds_no_connection_while_slack_makes_the_channel(
    any_service: Service, any_engine: Engine
) -> None:
    seen = checked_out_while_held(any_service.slack, any_engine, "conversations.create")
    response = await any_service.command(
        "/incident", "declare provider-outage upstream flaky", user=COMMANDER
    )
    assert response.status == 200
    await wait_for_incident(any_engine)
    for _ in range(200):
        if any_service.slack.responses_to():
            break
        await asyncio.sleep(0.025)
    assert any_service.slack.responses_to()[-1]["text"].startswith("Declared incident #1")
    assert seen == [0]


async def test_the_declare_form_holds_no_connection_while_slack_opens_it_or_makes_the_channel(
    any_service: Service, any_engine: Engine
) -> None:
    seen = checked_out_while_held(
        any_service.slack, any_engine, "views.open", "conversations.create"
    )
    response = await any_service.command("/incident", "declare", user=COMMANDER)
    assert response.status == 200
    for _ in range(200):
        if any_service.slack.calls_to("views.open") and seen:
            break
        await asyncio.sleep(0.025)
    assert seen == [0]
    body = interaction_body(
        declare_form_submission(
            user_id=COMMANDER, incident_class="provider-outage", summary="upstream flaky"
        )
    )
    assert (await any_service.post_signed(body)).status == 200
    await wait_for_incident(any_engine)
    assert seen == [0, 0]


async def test_an_alert_holds_no_connection_while_slack_makes_the_channel(
    any_service: Service, any_engine: Engine
) -> None:
    seen = checked_out_while_held(any_service.slack, any_engine, "conversations.create")
    alert = {
        "groupKey": '{}:{alertname="Errors"}',
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Errors", "incident_class": "provider-outage"},
                "annotations": {"summary": "errors at 40%"},
            }
        ],
    }
    headers = {"Authorization": "Bearer test-api-token"}
    url = f"{any_service.url}/api/v1/alerts"
    async with any_service.http.post(url, json=alert, headers=headers) as response:
        assert response.status == 201, await response.text()
    assert [i.summary for i in incidents(any_engine)] == ["errors at 40%"]
    assert seen == [0]


async def wait_for_incident(engine: Engine) -> None:
    for _ in range(400):
        if incidents(engine):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("no incident was declared")
