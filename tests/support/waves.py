"""Helpers shared by the rollout tests (no tests here): ready releases, observe, read state."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from bot.sources.demo import DemoSource
from commands.core import Context, Reply
from commands.policy import DemoSource as DemoConfig
from commands.policy import Policy
from commands.policy_file import parse_policy
from commands.ports import LocalActuator
from commands.wave.rules.reactions import due_polls, react, record_readings
from storage.models import AuditEvent, OutboxPost, Release, Rollout
from storage.releases import get_release
from storage.rollouts import rollout_of
from tests.conftest import MANAGER, run, with_channels

SMALL_POLICY = """
version: 1
channels: {rollouts: C0ROLLOUTS, incidents: C0INCIDENTS}
roles:
  release-managers: [U0RM1]
  incident-commanders: [U0IC1]
  vips: [U0VIP1]
checklist:
  - {id: tests, title: Tests pass}
tiers: [staging, free, pro]
plans:
  default:
    - {name: staging, tiers: [staging], percent: 100, observe: 3s}
    - {name: free-10, tiers: [free], percent: 10, observe: 3s, auto_promote: true}
    - {name: pro, tiers: [pro], percent: 100, observe: 3s, approvers: [vips]}
  risky:
    - {name: canary, tiers: [free], percent: 5, observe: 3s, auto_rollback: true}
sources:
  demo: {type: demo}
metrics:
  - {id: success_rate, source: demo, success: ">= 0.97", interval: 1s, min_samples: 2}
  - {id: latency_ms, source: demo, failure: "> 2500", interval: 1s, failure_limit: 1,
     consecutive_error_limit: 2, error_retry: 1s}
  - {id: cost, source: demo, budget: "<= 0.12", interval: 1s}
  - {id: shadow, source: demo, failure: "> 0.05", interval: 1s, dry_run: true}
"""


def small_policy(extra_metric: str = "") -> Policy:
    """Three short waves (3 s windows, 1 s polls) so reactions are quick to drive."""
    text = SMALL_POLICY
    if extra_metric:
        text = text.rstrip() + "\n  - " + extra_metric + "\n"
    return with_channels(parse_policy(text)).model_copy(
        update={
            "roles": {
                "release-managers": ["U0RM1"],
                "incident-commanders": ["U0IC1"],
                "vips": ["U0VIP1"],
            }
        }
    )


def local_actuator(ctx: Context) -> LocalActuator:
    actuator = LocalActuator()
    ctx.ports.actuator = actuator
    return actuator


async def ready_release(ctx: Context, version: str) -> Release:
    """Register a release and waive every checklist item as a release manager."""
    await run(ctx, f"/ready new {version}")
    for item in ctx.policy.checklist:
        reply = await run(ctx, f"/ready waive {version} {item.id} test waiver")
        assert not reply.error, reply.text
    release = get_release(version, session=ctx.session)
    assert release is not None
    return release


async def start(ctx: Context, version: str, plan: str = "") -> Reply:
    await ready_release(ctx, version)
    reply = await run(ctx, f"/wave start {version} {plan}".rstrip())
    assert not reply.error, reply.text
    return reply


def demo(ctx: Context) -> DemoSource:
    source = ctx.ports.sources.get("demo")
    if source is None:
        source = DemoSource(DemoConfig(type="demo"))
        ctx.ports.sources = {**ctx.ports.sources, "demo": source}
    assert isinstance(source, DemoSource)
    return source


def rollout(ctx: Context, version: str) -> Rollout:
    ctx.session.expire_all()
    release = get_release(version, session=ctx.session)
    assert release is not None
    found = rollout_of(release, session=ctx.session)
    assert found is not None
    return found


async def poll_once(ctx: Context, version: str) -> None:
    """One poll of every due metric from the demo source, then the reaction (as the poller)."""
    current = rollout(ctx, version)
    if current.state != "running":
        return
    source = demo(ctx)
    due = due_polls(ctx, current)
    readings = [(d.metric, await source.read(d.query, metric=d.metric)) for d in due]
    record_readings(
        ctx, current, wave_index=current.wave_index, taken_at=ctx.now(), readings=readings
    )
    await react(ctx, current)
    ctx.session.commit()


async def observe(ctx: Context, version: str, seconds: int, *, step: int = 1) -> None:
    """Let `seconds` pass on the fake clock, polling every `step` seconds."""
    clock = ctx.clock
    for _ in range(0, seconds, step):
        clock.advance(timedelta(seconds=step))  # type: ignore[attr-defined]
        await poll_once(ctx, version)


def audit_trail(session: Session, action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(col(AuditEvent.id))
    if action is not None:
        query = query.where(AuditEvent.action == action)
    session.expire_all()
    return list(session.exec(query))


def outbox(session: Session) -> list[OutboxPost]:
    session.expire_all()
    return list(session.exec(select(OutboxPost).order_by(col(OutboxPost.id))))


def thread_posts(session: Session, rollout_id: int | None) -> list[str]:
    return [p.text for p in outbox(session) if p.thread_key == f"rollout:{rollout_id}"]


def status_posts(session: Session, rollout_id: int | None) -> list[OutboxPost]:
    return [p for p in outbox(session) if p.message_key == f"rollout:{rollout_id}"]


__all__ = ["MANAGER"]
