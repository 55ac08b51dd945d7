"""`GET /metrics`: wavegate's own numbers in the Prometheus text format, over real HTTP."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from bot.http.keys import LISTENERS
from bot.telemetry import observe_poll
from storage.models import Release, Rollout, RolloutState
from storage.outbox import enqueue_post
from tests.conftest import ROLLOUTS, Service

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(service: Service) -> Samples:
    response = await service.http.get(f"{service.url}/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_commands_are_counted_by_name_and_outcome(service: Service) -> None:
    before = await scrape(service)
    await service.command("/ready", "new 2026.11.27-1")
    await service.command("/ready", "new 2026.11.27-1")  # a conflict
    # `/ready check` answers after the ack, on the work loop, and is counted there: the scrape
    # waits for that work (its reply to response_url included) to end.
    await service.command("/ready", "check")  # usage: no ITEM
    await service.command("/ready", "2026.11.27-1")
    assert await service.app[LISTENERS].drain(5) == 0
    assert "Usage" in str(service.slack.responses_to("1")[-1]["text"])
    after = await scrape(service)

    def delta(command: str, outcome: str) -> float:
        key = {"command": command, "outcome": outcome}
        return value(after, "wavegate_commands_total", **key) - value(
            before, "wavegate_commands_total", **key
        )

    assert delta("ready new", "ok") == 1
    assert delta("ready new", "conflict") == 1
    assert delta("ready check", "usage_error") == 1
    assert delta("ready status", "ok") == 1


async def test_ack_latency_histogram_counts_every_slash_command(service: Service) -> None:
    before = await scrape(service)
    for _ in range(3):
        response = await service.command("/ready", "help")
        assert response.status == 200
    after = await scrape(service)
    count = "wavegate_command_ack_seconds_count"
    assert value(after, count) - value(before, count) == 3
    inf = value(after, "wavegate_command_ack_seconds_bucket", le="+Inf")
    assert inf == value(after, count)
    assert value(after, "wavegate_command_ack_seconds_bucket", le="3.0") == inf


async def test_rollouts_by_state_are_read_from_the_database(service: Service) -> None:
    now = service.runtime.clock()
    with Session(service.runtime.engine) as session:
        for index, state in enumerate(["running", "running", "paused", "complete"]):
            release = Release(version=f"1.{index}", created_by="U0RM1", created_at=now)
            session.add(release)
            session.flush()
            assert release.id is not None
            session.add(
                Rollout(
                    release_id=release.id,
                    plan="default",
                    state=RolloutState(state),
                    wave_started_at=now,
                    started_by="U0RM1",
                    started_at=now - timedelta(hours=1),
                )
            )
        session.commit()
    samples = await scrape(service)
    assert value(samples, "wavegate_rollouts", state="running") == 2
    assert value(samples, "wavegate_rollouts", state="paused") == 1
    assert value(samples, "wavegate_rollouts", state="complete") == 1
    assert value(samples, "wavegate_rollouts", state="rolled_back") == 0
    # No Leadership in this app (no background work): a lone process leads.
    assert value(samples, "wavegate_leader") == 1


async def test_slack_api_errors_are_counted_by_method_and_error(service: Service) -> None:
    before = await scrape(service)
    service.slack.fail("chat.postMessage", "channel_not_found")
    with Session(service.runtime.engine) as session:
        enqueue_post(channel=ROLLOUTS, text="hi", at=service.runtime.clock(), session=session)
        session.commit()
    assert await service.delivery.deliver_due() == 0
    after = await scrape(service)
    labels = {"method": "chat.postMessage", "error": "channel_not_found"}
    name = "wavegate_slack_api_errors_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 1


async def test_polls_by_source_and_phase(service: Service) -> None:
    before = await scrape(service)
    observe_poll("prom", "error")
    observe_poll("prom", "error")
    after = await scrape(service)
    name = "wavegate_polls_total"
    delta = value(after, name, source="prom", phase="error") - value(
        before, name, source="prom", phase="error"
    )
    assert delta == 2
