"""`POST /api/v1/alerts` (Alertmanager's webhook) and `GET /api/v1/incidents` over real HTTP."""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp
import pytest
from sqlmodel import Session, col, select

from bot.telemetry import REGISTRY
from storage.models import AuditEvent, Incident, IncidentStatus, TimelineEntry
from tests.conftest import COMMANDER, Service
from tests.support.clock import FakeClock

AUTH = {"Authorization": "Bearer test-api-token"}
GROUP = '{}/{incident_class="provider-outage"}:{alertname="ProviderErrors"}'


def alertmanager(
    status: str = "firing",
    *,
    group_key: str = GROUP,
    labels: dict[str, str] | None = None,
    alerts: int = 1,
) -> dict[str, Any]:
    """A webhook body as Alertmanager (version 4) sends it."""
    labels = labels or {"alertname": "ProviderErrors", "incident_class": "provider-outage"}
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "wavegate",
        "groupLabels": {"alertname": labels.get("alertname", "")},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "LLM provider error rate above 20%"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {**labels, "route": f"/v1/generate/{n}"},
                "annotations": {"summary": "LLM provider error rate above 20%"},
                "startsAt": "2026-11-27T09:58:00Z",
                # Alertmanager's zero time while firing.
                "endsAt": "2026-11-27T10:04:00Z"
                if status == "resolved"
                else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
                "fingerprint": f"f{n}",
            }
            for n in range(alerts)
        ],
    }


async def post_alerts(service: Service, body: Any, **headers: str) -> aiohttp.ClientResponse:
    return await service.http.post(
        f"{service.url}/api/v1/alerts", json=body, headers=headers or AUTH
    )


def stored(service: Service) -> list[Incident]:
    with Session(service.runtime.engine) as session:
        return list(session.exec(select(Incident).order_by(col(Incident.id))))


def timeline_kinds(service: Service, incident_id: int = 1) -> list[str]:
    with Session(service.runtime.engine) as session:
        entries = session.exec(
            select(TimelineEntry)
            .where(TimelineEntry.incident_id == incident_id)
            .order_by(col(TimelineEntry.id))
        )
        return [entry.kind for entry in entries]


async def test_a_firing_alert_declares_its_class_once(service: Service) -> None:
    response = await post_alerts(service, alertmanager())
    assert response.status == 201
    assert await response.json() == {"action": "declared", "incident": 1}
    (incident,) = stored(service)
    assert (incident.incident_class, incident.severity) == ("provider-outage", 2)
    assert incident.summary == "LLM provider error rate above 20%"
    assert incident.declared_by == "alertmanager"
    assert incident.commander == COMMANDER
    assert incident.alert_group_key == GROUP
    # The same group again (Alertmanager repeats, or more alerts joined): one incident.
    again = await post_alerts(service, alertmanager(alerts=3))
    assert again.status == 200
    assert await again.json() == {"action": "updated", "incident": 1}
    assert len(stored(service)) == 1
    assert len(service.slack.calls_to("conversations.create")) == 1
    invite = service.slack.calls_to("conversations.invite")[0]
    assert invite.args["users"] == COMMANDER
    resolved = await post_alerts(service, alertmanager("resolved", alerts=3))
    assert await resolved.json() == {"action": "updated", "incident": 1}
    assert timeline_kinds(service) == ["declared", "automation", "alert", "alert", "alert"]
    # Alerts resolving do not resolve the incident: people do.
    assert stored(service)[0].status == "declared"
    with Session(service.runtime.engine) as session:
        entries = list(session.exec(select(TimelineEntry).where(TimelineEntry.kind == "alert")))
    source = "source: http://prometheus:9090/graph?g0.expr=x"
    assert entries[1].text == f"Alertmanager: 3 alerts firing: ProviderErrors; {source}"
    assert (
        entries[2].text
        == f"Alertmanager: resolved at 2026-11-27T10:04:00Z: ProviderErrors; {source}"
    )


async def test_severity_label_and_a_recurrence_after_resolve(service: Service) -> None:
    labels = {"alertname": "TokenLeak", "incident_class": "auth-policy-failure", "severity": "sev3"}
    await post_alerts(service, alertmanager(labels=labels, group_key="g1"))
    with Session(service.runtime.engine) as session:
        first = session.get(Incident, 1)
        assert first is not None
        assert first.severity == 3
        first.status = IncidentStatus.resolved
        session.add(first)
        session.commit()
    response = await post_alerts(service, alertmanager(labels=labels, group_key="g1"))
    assert await response.json() == {"action": "declared", "incident": 2}
    assert [(i.id, i.alert_group_key) for i in stored(service)] == [(1, None), (2, "g1")]


async def test_alerts_that_name_no_class_are_ignored(service: Service) -> None:
    before = ignored_count("no_class")
    response = await post_alerts(service, alertmanager(labels={"alertname": "DiskFull"}))
    assert response.status == 200
    assert await response.json() == {
        "action": "ignored",
        "reason": "no incident_class label",
        "incident": None,
    }
    resolved_first = await post_alerts(service, alertmanager("resolved", group_key="new"))
    assert (await resolved_first.json())["action"] == "ignored"
    assert stored(service) == []
    assert ignored_count("no_class") - before == 1


def ignored_count(reason: str) -> float:
    return REGISTRY.get_sample_value("wavegate_alerts_ignored_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize(
    ("body", "reason", "says"),
    [
        (
            alertmanager(labels={"alertname": "X", "incident_class": "db-fire"}),
            "unknown_class",
            "unknown incident class 'db-fire' (classes: ",
        ),
        ({**alertmanager("pending"), "status": "pending"}, "status", "no firing or resolved"),
    ],
)
async def test_what_cannot_be_acted_on_is_answered_2xx_so_alertmanager_stops_retrying(
    service: Service, body: Any, reason: str, says: str
) -> None:
    before = ignored_count(reason)
    for _ in range(2):  # Alertmanager would re-send a 4xx forever; a 2xx it sends once
        response = await post_alerts(service, body)
        assert response.status == 200
        answer = await response.json()
        assert answer["action"] == "ignored"
        assert answer["reason"].startswith(says)
    assert ignored_count(reason) - before == 2
    assert stored(service) == []
    assert service.slack.calls == []


async def test_a_group_key_of_any_length_declares_once_and_is_stored_as_a_hash(
    service: Service,
) -> None:
    labels = {f"label_{n:02d}": f"value-{'x' * 25}-{n}" for n in range(16)}
    key = "{}:{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    assert len(key) > 600
    body = alertmanager(group_key=key)
    first = await post_alerts(service, body)
    again = await post_alerts(service, body)
    assert (first.status, again.status) == (201, 200)
    assert (await again.json())["action"] == "updated"
    [incident] = stored(service)
    assert incident.alert_group_key == "sha256:" + hashlib.sha256(key.encode()).hexdigest()


async def test_repeat_notifications_update_one_message_in_the_incident_channel(
    service: Service,
) -> None:
    for count in (1, 2, 3, 3):
        await post_alerts(service, alertmanager(alerts=count))
        await service.delivery.deliver_due()
    in_channel = [
        c
        for c in service.slack.calls
        if c.args.get("channel") == "C0INC0001" and "Alertmanager" in str(c.args.get("text", ""))
    ]
    posted = [c for c in in_channel if c.method == "chat.postMessage"]
    updated = [c for c in in_channel if c.method == "chat.update"]
    assert len(posted) == 1
    assert len(updated) >= 1
    assert "3 alerts firing" in updated[-1].args["text"]


@pytest.mark.parametrize(
    ("label", "severity"),
    [("critical", 1), ("error", 2), ("high", 2), ("warning", 3), ("info", 4), ("2", 2)],
)
async def test_severity_labels_are_mapped(service: Service, label: str, severity: int) -> None:
    labels = {"alertname": "X", "incident_class": "provider-outage", "severity": label}
    await post_alerts(service, alertmanager(labels=labels))
    assert stored(service)[0].severity == severity


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "the body is not valid JSON"),
        ([1, 2], "the body must be a JSON object"),
        ({"status": "firing", "alerts": []}, "groupKey: Field required"),
        ({**alertmanager(), "alerts": []}, "alerts: List should have at least 1 item"),
    ],
)
async def test_bad_bodies_get_400_with_a_clear_error_and_change_nothing(
    service: Service, body: Any, message: str
) -> None:
    if isinstance(body, str):
        response = await service.http.post(f"{service.url}/api/v1/alerts", data=body, headers=AUTH)
    else:
        response = await post_alerts(service, body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error.startswith(message)
    assert stored(service) == []
    assert service.slack.calls == []
    with Session(service.runtime.engine) as session:
        assert session.exec(select(AuditEvent)).all() == []


async def test_the_api_needs_the_bearer_token(service: Service) -> None:
    response = await post_alerts(service, alertmanager(), Authorization="Bearer wrong")
    assert response.status == 401
    response = await service.http.get(f"{service.url}/api/v1/incidents")
    assert response.status == 401
    assert stored(service) == []


async def test_incidents_are_listed_newest_first_with_utc_times(
    service: Service, clock: FakeClock
) -> None:
    await post_alerts(service, alertmanager(group_key="a"))
    clock.advance(minutes=30, seconds=15)
    labels = {"alertname": "Sandbox", "incident_class": "sandbox-instability", "severity": "1"}
    await post_alerts(service, alertmanager(labels=labels, group_key="b"))
    with Session(service.runtime.engine) as session:
        first = session.get(Incident, 1)
        assert first is not None
        first.status, first.mitigated_at = IncidentStatus.mitigated, clock()
        session.add(first)
        session.commit()
    response = await service.http.get(f"{service.url}/api/v1/incidents", headers=AUTH)
    assert response.status == 200
    assert await response.json() == {
        "incidents": [
            {
                "id": 2,
                "class": "sandbox-instability",
                "severity": 1,
                "status": "declared",
                "channel": "C0INC0002",
                "declared_at": "2026-11-27T10:30:15Z",
                "mitigated_at": None,
                "resolved_at": None,
            },
            {
                "id": 1,
                "class": "provider-outage",
                "severity": 2,
                "status": "mitigated",
                "channel": "C0INC0001",
                "declared_at": "2026-11-27T10:00:00Z",
                "mitigated_at": "2026-11-27T10:30:15Z",
                "resolved_at": None,
            },
        ]
    }
    filtered = await service.http.get(
        f"{service.url}/api/v1/incidents?status=mitigated", headers=AUTH
    )
    assert [i["id"] for i in (await filtered.json())["incidents"]] == [1]
    bad = await service.http.get(f"{service.url}/api/v1/incidents?status=open", headers=AUTH)
    assert bad.status == 400
    assert (await bad.json())["error"].startswith("status: unknown status 'open'")
