"""`GET /api/v1/incidents`, a postmortem draft, the monthly review, and `POST /api/v1/alerts`."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.http.api import error, error_for, iso, read_body
from bot.http.keys import RUNTIME
from bot.telemetry import observe_alert_ignored
from commands.core import CommandError
from commands.incident.alerts import (
    AlertGroup,
    AlertOutcome,
    AlertResult,
    FiringAlert,
    receive_alerts,
)
from commands.incident.improve import build_full_review
from commands.incident.improve_text import review_json
from commands.incident.parse import parse_month
from commands.incident.postmortem import build_postmortem
from storage.incidents import get_incident, list_incidents
from storage.models import Incident, IncidentStatus

routes = web.RouteTableDef()
log = logging.getLogger(__name__)
# (stored group key, reason) already logged as ignored: Alertmanager repeats a group every
# group_interval, and one log line says it. Bounded, so a flood of groups cannot grow it.
_LOGGED: set[tuple[str, str]] = set()
LOGGED_MAX = 10_000


def incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "class": incident.incident_class,
        "severity": incident.severity,
        "status": incident.status,
        "channel": incident.channel,
        "declared_at": iso(incident.declared_at),
        "mitigated_at": iso(incident.mitigated_at),
        "resolved_at": iso(incident.resolved_at),
    }


@routes.get("/api/v1/incidents")
async def get_incidents(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in set(IncidentStatus):
        known = ", ".join(IncidentStatus)
        return error(400, f"status: unknown status {status[:40]!r} (use one of {known})")
    runtime = request.app[RUNTIME]

    def read() -> list[dict[str, Any]]:
        with runtime.unit() as ctx:
            return [incident_json(i) for i in list_incidents(session=ctx.session, status=status)]

    # On the work loop (bot/work.py), like every unit of work: the HTTP loop stays free.
    return web.json_response({"incidents": await runtime.work.call(read)})


@routes.get("/api/v1/incidents/{id}/postmortem")
async def get_postmortem(request: web.Request) -> web.Response:
    """The postmortem draft as Markdown, built from what is recorded now."""
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 9:
        return error(400, f"id: {raw[:20]!r} is not an incident id")
    runtime = request.app[RUNTIME]

    def draft() -> str | None:
        with runtime.unit() as ctx:
            incident = get_incident(int(raw), session=ctx.session)
            return None if incident is None else build_postmortem(ctx, incident)

    document = await runtime.work.call(draft)
    if document is None:
        return error(404, f"no incident #{raw}")
    return web.Response(text=document, content_type="text/markdown", charset="utf-8")


@routes.get("/api/v1/review")
async def get_review(request: web.Request) -> web.Response:
    """The monthly review as JSON (`?month=YYYY-MM`, default this month so far)."""
    runtime = request.app[RUNTIME]
    month = request.query.get("month") or f"{runtime.clock():%Y-%m}"
    try:
        start, _ = parse_month(month, "GET /api/v1/review?month=YYYY-MM")
    except CommandError as err:
        return error(400, f"month: {err.message}")

    def review() -> dict[str, Any]:
        with runtime.unit() as ctx:
            return review_json(build_full_review(ctx, start))

    return web.json_response(await runtime.work.call(review))


class Lenient(BaseModel):
    # Alertmanager adds fields from version to version; the ones read here are checked.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Alert(Lenient):
    # firing / resolved; anything else is ignored, not refused (a 4xx is final for Alertmanager).
    status: str = Field(max_length=40)
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    fingerprint: str | None = None
    endsAt: str | None = None
    generatorURL: str | None = None


class AlertmanagerWebhook(Lenient):
    """Alertmanager's webhook body (version 4)."""

    version: str | None = None
    # Any length: long keys are stored as their hash (commands/incident/alerts.py).
    groupKey: str = Field(min_length=1, max_length=100_000)
    status: str = Field(max_length=40)
    alerts: list[Alert] = Field(min_length=1, max_length=1000)
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}

    def group(self) -> AlertGroup:
        return AlertGroup(
            group_key=self.groupKey,
            alerts=[
                FiringAlert(
                    name=alert.labels.get("alertname", "alert"),
                    status=alert.status,
                    labels=alert.labels,
                    summary=alert.annotations.get("summary")
                    or alert.annotations.get("description"),
                    # Alertmanager sends the zero time for an alert that has not ended.
                    ends_at=None
                    if not alert.endsAt or alert.endsAt.startswith("0001-")
                    else alert.endsAt,
                    generator_url=alert.generatorURL or None,
                )
                for alert in self.alerts
            ],
            common_labels={**self.groupLabels, **self.commonLabels},
            summary=self.commonAnnotations.get("summary"),
        )


@routes.post("/api/v1/alerts")
async def post_alerts(request: web.Request) -> web.Response:
    body = await read_body(request, AlertmanagerWebhook)
    if isinstance(body, web.Response):
        return body
    runtime = request.app[RUNTIME]
    group = body.group()

    async def receive() -> AlertResult:
        with runtime.unit() as ctx:
            return await receive_alerts(ctx, group)

    try:
        result = await runtime.work.run(receive())
    except CommandError as err:
        return error_for(err)
    except sa.exc.IntegrityError:
        # Two deliveries of one new group raced; the other one declared the incident.
        return error(409, "this alert group is being declared by another delivery; retry")
    if result.outcome == AlertOutcome.ignored:
        reason = result.reason.value if result.reason is not None else "other"
        observe_alert_ignored(reason)
        seen = (group.stored_key, reason)
        if seen not in _LOGGED:
            if len(_LOGGED) >= LOGGED_MAX:
                _LOGGED.clear()
            _LOGGED.add(seen)
            log.info("alert group %s ignored: %s", group.stored_key[:80], result.why)
        return web.json_response({"action": "ignored", "reason": result.why, "incident": None})
    incident = result.incident
    return web.json_response(
        {"action": result.outcome, "incident": incident.id if incident is not None else None},
        status=201 if result.outcome == AlertOutcome.declared else 200,
    )
