"""Scheduled incident work: update reminders, the monthly review, proofs of the first-response
paths, follow-up reminders, pages to the paging webhook, and archiving resolved channels."""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta

import aiohttp
from apscheduler.triggers.cron import CronTrigger

from bot.jobs.job import Job, every
from bot.runtime import Runtime
from commands.incident import postmortem, proofs
from commands.incident.chat import ChatFailed
from commands.incident.followups import remind_due_followups
from commands.incident.improve_text import post_monthly_review
from commands.incident.reminders import remind_due
from storage.incident_loop import IncidentClosure, PageEvent
from storage.incident_reach import due_closures, due_pages
from storage.incidents import get_incident
from storage.outbox import backoff

log = logging.getLogger(__name__)

# The shortest cadence a policy is likely to set is minutes; checking each minute is enough.
REMINDER_CHECK = timedelta(minutes=1)
# Proof intervals are hours in practice; a minute's check finds each due one in time.
PROOF_CHECK = timedelta(minutes=1)
PAGE_CHECK = timedelta(seconds=5)
PAGE_ATTEMPTS = 10


async def remind_incidents(runtime: Runtime) -> None:
    with runtime.unit() as ctx:
        remind_due(ctx)
        remind_due_followups(ctx)


async def post_review(runtime: Runtime) -> None:
    with runtime.unit() as ctx:
        post_monthly_review(ctx)


# ---------------------------------------------------------------- proofs


async def http_probe(runtime: Runtime, url: str, status: int, limit: timedelta) -> tuple[bool, str]:
    try:
        async with runtime.source_http.session.get(
            url, timeout=aiohttp.ClientTimeout(total=limit.total_seconds()), allow_redirects=False
        ) as response:
            if response.status == status:
                return True, f"GET {url} answered {response.status}"
            return False, f"GET {url} answered {response.status}, not {status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return False, f"GET {url} failed: {type(exc).__name__} {exc}".strip()


async def check_proofs(runtime: Runtime) -> int:
    """Run each due proof: read what it needs, check it with no transaction open, record it."""
    with runtime.unit() as ctx:
        plans = [proofs.plan(ctx, proof) for proof in proofs.due(ctx)]

    async def probe(url: str, status: int, limit: timedelta) -> tuple[bool, str]:
        return await http_probe(runtime, url, status, limit)

    for plan in plans:
        ok, detail = await proofs.check(plan, runtime.ports, probe, at=runtime.clock())
        with runtime.unit() as ctx:
            proofs.record_outcome(ctx, plan.proof, ok, detail)
    return len(plans)


# ---------------------------------------------------------------- pages


async def _send_page(runtime: Runtime, page: PageEvent) -> str | None:
    """POST one event; None when the receiver accepted it (2xx), else the error."""
    paging = runtime.policy.paging
    if paging is None:
        return "paging is no longer configured"
    body = json.loads(page.payload)
    body["routing_key"] = os.environ.get(paging.routing_key_env, "")
    try:
        async with runtime.source_http.session.post(
            paging.url,
            json=body,
            timeout=aiohttp.ClientTimeout(total=paging.timeout.total_seconds()),
        ) as response:
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status}: {(await response.text())[:200]}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"


async def deliver_pages(runtime: Runtime) -> int:
    """Send due pages in order; a failure is retried with backoff, then given up on."""
    with runtime.unit() as ctx:
        pages = due_pages(now=ctx.now(), session=ctx.session)
    sent = 0
    for page in pages:
        failure = await _send_page(runtime, page)
        with runtime.unit() as ctx:
            row = ctx.session.get(PageEvent, page.id)
            assert row is not None
            row.attempts += 1
            if failure is None:
                row.sent_at = ctx.now()
                sent += 1
            else:
                row.last_error = failure[:2000]
                # Given up after PAGE_ATTEMPTS: the sent_at stays empty, the error says why.
                far = (
                    timedelta(days=3650) if row.attempts >= PAGE_ATTEMPTS else backoff(row.attempts)
                )
                row.next_attempt_at = ctx.now() + far
                log.warning("page %s for incident %s failed: %s", row.id, row.incident_id, failure)
            ctx.session.add(row)
        if failure is not None:
            # Keep a trigger before its resolve: stop at the first failure.
            break
    return sent


# ---------------------------------------------------------------- archiving


async def archive_resolved(runtime: Runtime) -> int:
    """Channels past their archive delay: upload the postmortem (once), post the last message
    linking it, and archive once that message has been delivered. Slack is called outside any
    transaction."""
    archived = 0
    with runtime.unit() as ctx:
        closures = [c.incident_id for c in due_closures(now=ctx.now(), session=ctx.session)]
    for incident_id in closures:
        with runtime.unit() as ctx:
            closure = ctx.session.get(IncidentClosure, incident_id)
            incident = get_incident(incident_id, session=ctx.session)
            if closure is None or incident is None or not incident.channel:
                continue
            if closure.postmortem_link is None:
                try:
                    closure.postmortem_link = await postmortem.upload_postmortem(
                        ctx, incident, actor="wavegate"
                    )
                except ChatFailed as exc:
                    closure.last_error = exc.message
                ctx.session.add(closure)
            postmortem.say_closing(ctx, closure, incident)
            ready = postmortem.closing_said(ctx, incident_id)
            channel = incident.channel
            chat = ctx.ports.chat
        if not ready or chat is None:
            continue
        try:
            await chat.archive_channel(channel)
        except ChatFailed as exc:
            with runtime.unit() as ctx:
                row = ctx.session.get(IncidentClosure, incident_id)
                if row is not None:
                    row.last_error = exc.message
            continue
        with runtime.unit() as ctx:
            row = ctx.session.get(IncidentClosure, incident_id)
            if row is not None:
                row.archived_at = ctx.now()
                ctx.session.add(row)
        archived += 1
    return archived


async def run_proofs(runtime: Runtime) -> None:
    await check_proofs(runtime)


async def send_pages(runtime: Runtime) -> None:
    await deliver_pages(runtime)


async def archive_channels(runtime: Runtime) -> None:
    await archive_resolved(runtime)


def jobs(runtime: Runtime) -> list[Job]:
    return [
        Job("incident-reminders", remind_incidents, every(REMINDER_CHECK)),
        # The 1st of each month reviews the month before; posted once however often it runs.
        Job(
            "incident-review",
            post_review,
            CronTrigger(day=1, hour=9, minute=0, timezone="UTC"),
        ),
        Job("incident-proofs", run_proofs, every(PROOF_CHECK)),
        Job("incident-pages", send_pages, every(PAGE_CHECK)),
        Job("incident-archive", archive_channels, every(REMINDER_CHECK)),
    ]
