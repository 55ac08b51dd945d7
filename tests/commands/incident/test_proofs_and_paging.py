"""Proofs of the first-response paths and paging, end to end: a backup route probed over real
HTTP, the actuator's signed `verify` at the fake deploy system, the owner told once, the failing
proof in a new incident's guidance, in /ready and blocking a start; pages at a local receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from bot.actuator import WebhookActuator
from bot.jobs.incidents import check_proofs, deliver_pages
from commands.policy import Actuator, Policy
from commands.policy_incidents import Paging, Proof
from storage.models import Release, ReleaseState
from tests.conftest import COMMANDER, DEVELOPER, Service
from tests.support.actuator import SECRET, FakeDeploySystem
from tests.support.clock import FakeClock
from tests.support.incidents import FakeSlackWithHistory
from tests.support.loop import SRE, api, http_proof, loop_policy, posts_to, say
from tests.support.receiver import Receiver

RELEASE = "2026.11.28-1"
KNOWN_GOOD = "2026.11.20-1"
CHANNEL = "C0INC0001"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackWithHistory]:
    found = await FakeSlackWithHistory().start()
    yield found
    await found.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = await Receiver().start()
    yield found
    await found.stop()


@pytest.fixture
async def deploy() -> AsyncIterator[FakeDeploySystem]:
    found = await FakeDeploySystem().start()
    yield found
    await found.stop()


@pytest.fixture
def policy(receiver: Receiver) -> Policy:
    verify = Proof(
        id="last-known-good",
        title="Last known-good release is deployable",
        kind="verify",
        classes=["migration-regression"],
        owner=SRE,
    )
    paging = Paging(url=f"{receiver.url}/enqueue", classes=["migration-regression"])
    return loop_policy(proofs=[http_proof(f"{receiver.url}/health"), verify], paging=paging)


def seed_known_good(service: Service) -> None:
    with Session(service.runtime.engine) as session:
        at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
        session.add(
            Release(
                version=KNOWN_GOOD,
                state=ReleaseState.complete,
                created_by="U0RM1",
                created_at=at,
                completed_at=at,
            )
        )
        session.commit()


async def test_a_failing_proof_is_told_once_shows_in_guidance_and_blocks_a_start(
    service: Service, clock: FakeClock, receiver: Receiver, deploy: FakeDeploySystem
) -> None:
    config = Actuator.model_validate({"url": deploy.url, "retries": 0})
    service.runtime.ports.actuator = WebhookActuator(config, SECRET, backoff=0)
    seed_known_good(service)
    receiver.get_status = 503

    assert await check_proofs(service.runtime) == 2
    (verify,) = deploy.received
    assert verify.signature_ok
    assert verify.body["action"] == "verify"
    assert (verify.body["release"], verify.body["target"]) == (KNOWN_GOOD, KNOWN_GOOD)
    assert receiver.gets == 1
    clock.advance(minutes=10)
    assert await check_proofs(service.runtime) == 0  # not due again for an hour
    clock.advance(hours=1)
    assert await check_proofs(service.runtime) == 2
    await service.delivery.deliver_due()
    (told,) = posts_to(service, SRE)  # once, though it failed twice
    assert told["text"].startswith("❌ Proof *Backup provider route* (backup-route) FAILED: GET ")
    assert "answered 503, not 200. Rollout starts and promotions are blocked" in told["text"]

    assert (await api(service, "POST", "/api/v1/releases", json={"version": RELEASE})).status == 201
    refused = await say(service, "/wave", f"start {RELEASE}")
    assert (
        "cannot start 2026.11.28-1: proof backup-route (Backup provider route) is failing"
        in (refused["text"])
    )
    assert "An approver may override with --force REASON." in refused["text"]
    ready = await say(service, "/ready", RELEASE)
    assert "❌ Backup provider route: FAILED 0s ago — GET http://127.0.0.1:" in ready["text"]
    assert "✅ Last known-good release is deployable: validated 0s ago" in ready["text"]

    clock.advance(minutes=20)
    await say(
        service,
        "/incident",
        "declare provider-outage Primary model provider times out",
        user=DEVELOPER,
    )
    await service.delivery.deliver_due()
    guidance = posts_to(service, CHANNEL)[0]["text"]
    assert "*Proofs of the first-response paths:*" in guidance
    assert "❌ Backup provider route: FAILED 20m ago — GET http://127.0.0.1:" in guidance
    assert "(owner <@U0SRE1>)" in guidance
    # The verify proof serves migration regressions, not provider outages.
    assert "Last known-good" not in guidance

    receiver.get_status = 200
    clock.advance(hours=1)
    await check_proofs(service.runtime)
    await service.delivery.deliver_due()
    assert posts_to(service, SRE)[-1]["text"].startswith(
        "✅ Proof *Backup provider route* (backup-route) passes again"
    )


async def test_paging_triggers_on_declare_and_resolves_with_one_dedup_key(
    service: Service, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVEGATE_PAGING_ROUTING_KEY", "R0UTINGKEY")
    await say(
        service,
        "/incident",
        "declare migration-regression sev3 Orders table writes fail",
        user=DEVELOPER,
    )
    # A sev4 of a class that does not page: nothing is queued for it.
    await say(
        service, "/incident", "declare provider-outage sev4 Slow fallback model", user=DEVELOPER
    )
    assert await deliver_pages(service.runtime) == 1
    await say(service, "/incident", "resolve #1 restored", user=COMMANDER)
    await say(service, "/incident", "resolve #2 fine", user=COMMANDER)
    assert await deliver_pages(service.runtime) == 1
    assert await deliver_pages(service.runtime) == 0
    trigger, resolve = receiver.received
    assert trigger == {
        "event_action": "trigger",
        "dedup_key": "wavegate-incident-1",
        "routing_key": "R0UTINGKEY",
        "payload": {
            "summary": "sev3 migration-regression: Orders table writes fail",
            "source": "wavegate",
            "severity": "error",
            "component": "",
            "group": "migration-regression",
            "class": "migration-regression",
            "custom_details": {"incident": 1, "channel": CHANNEL},
        },
    }
    assert resolve == {
        "event_action": "resolve",
        "dedup_key": "wavegate-incident-1",
        "routing_key": "R0UTINGKEY",
    }
