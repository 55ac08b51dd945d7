"""`/ready`: the readiness checklist through the command layer, on SQLite."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from commands.core import Context
from commands.ready.checklist import evaluate, record_ci_result
from commands.ready.expiry import expiring_items
from storage.audit import events_for
from storage.models import AuditEvent, CheckStatus, OutboxPost, Release, ReleaseState
from storage.releases import get_release
from tests.conftest import DEVELOPER, MANAGER, run
from tests.support.clock import FakeClock

VERSION = "2026.11.27-1"


async def new(ctx: Context, version: str = VERSION) -> Release:
    reply = await run(ctx, f"/ready new {version}")
    assert not reply.error, reply.text
    release = get_release(version, session=ctx.session)
    assert release is not None
    return release


def states(ctx: Context, release: Release) -> dict[str, str]:
    return {s.item.id: s.state.value for s in evaluate(release, ctx).items}


async def complete_checklist(ctx: Context, version: str = VERSION) -> None:
    for item in ("migration-rollback", "concurrency", "rotation-documented"):
        await run(ctx, f"/ready check {version} {item} https://wiki/{item}")
    await run(ctx, f"/ready check {version} cost-guardrails")
    await run(ctx, f"/ready waive {version} observability dashboards land next sprint")
    for check in ("lint", "typecheck", "test", "db-migrate"):
        record_ci_result(version, "validation", check, CheckStatus.passed, ctx, actor="api")


async def test_new_release_starts_with_every_item_pending(ctx: Context) -> None:
    release = await new(ctx)
    assert release.state == ReleaseState.candidate
    assert set(states(ctx, release).values()) == {"pending"}
    reply = await run(ctx, "/ready")
    assert reply.text.startswith(f"Readiness of {VERSION} (candidate): 0 of 6 done.")


async def test_duplicate_release_is_refused_and_audited(ctx: Context) -> None:
    await new(ctx)
    reply = await run(ctx, f"/ready new {VERSION}")
    assert reply.error
    assert "already registered" in reply.text
    outcomes = [
        (e.action, e.outcome) for e in events_for(f"release:{VERSION}", session=ctx.session)
    ]
    assert outcomes == [("ready.new", "ok"), ("ready.new", "refused")]


async def test_bad_version_is_a_usage_error(ctx: Context) -> None:
    reply = await run(ctx, "/ready new ../../etc/passwd")
    assert reply.error
    assert "is not a release version" in reply.text
    assert ctx.session.exec(select(Release)).all() == []


async def test_check_with_evidence_passes_the_item_and_announces_it(ctx: Context) -> None:
    release = await new(ctx)
    reply = await run(ctx, "/ready check rotation-documented <https://wiki/rotation|runbook>")
    assert not reply.error
    assert "1 of 6 items done" in reply.text
    status = {s.item.id: s for s in evaluate(release, ctx).items}["rotation-documented"]
    assert status.state == "passed"
    assert status.evidence == "https://wiki/rotation"
    assert status.actor == MANAGER
    posts = ctx.session.exec(select(OutboxPost)).all()
    assert posts[-1].channel == "C0ROLLOUTS"
    assert "rotation-documented" in posts[-1].text


async def test_required_evidence_is_enforced(ctx: Context) -> None:
    release = await new(ctx)
    reply = await run(ctx, "/ready check rotation-documented")
    assert reply.error
    assert "needs evidence" in reply.text
    assert states(ctx, release)["rotation-documented"] == "pending"


async def test_optional_evidence_may_be_left_out(ctx: Context) -> None:
    release = await new(ctx)
    await run(ctx, "/ready check cost-guardrails")
    assert states(ctx, release)["cost-guardrails"] == "passed"


async def test_first_word_is_the_release_when_it_exists(ctx: Context, clock: FakeClock) -> None:
    older = await new(ctx, "1.0.0")
    clock.advance(minutes=1)
    newer = await new(ctx, "1.1.0")
    await run(ctx, "/ready check 1.0.0 cost-guardrails")
    await run(ctx, "/ready check concurrency https://load-test/42")
    assert states(ctx, older)["cost-guardrails"] == "passed"
    assert states(ctx, older)["concurrency"] == "pending"
    assert states(ctx, newer)["concurrency"] == "passed"
    assert "Readiness of 1.0.0" in (await run(ctx, "/ready 1.0.0")).text
    assert "Readiness of 1.1.0" in (await run(ctx, "/ready")).text


async def test_fail_needs_a_reason_and_records_it(ctx: Context) -> None:
    release = await new(ctx)
    assert (await run(ctx, "/ready fail concurrency")).error
    reply = await run(ctx, '/ready fail concurrency "p95 hit 4.1s at 200 sessions"')
    assert not reply.error
    status = {s.item.id: s for s in evaluate(release, ctx).items}["concurrency"]
    assert status.state == "failed"
    assert status.reason == "p95 hit 4.1s at 200 sessions"


async def test_waive_needs_the_permission(ctx: Context) -> None:
    release = await new(ctx)
    reply = await run(ctx, "/ready waive concurrency not this time", user=DEVELOPER)
    assert reply.error
    assert "only release-managers may waive a checklist item" in reply.text
    assert states(ctx, release)["concurrency"] == "pending"
    refused = ctx.session.exec(select(AuditEvent).where(AuditEvent.outcome == "refused")).one()
    assert (refused.actor, refused.action, refused.subject) == (
        DEVELOPER,
        "ready.waive",
        f"release:{VERSION}",
    )
    assert (await run(ctx, "/ready waive concurrency rehearsed last week")).error is False
    assert states(ctx, release)["concurrency"] == "waived"


async def test_waive_is_open_to_a_member_of_a_user_group(ctx: Context) -> None:
    from commands.core import Request
    from commands.router import dispatch

    groups = {"release-managers": ["S0RELEASE"], "incident-commanders": ["U0IC1"]}
    ctx.policy = ctx.policy.model_copy(update={"roles": groups})
    release = await new(ctx)
    request = Request(
        "/ready", "waive concurrency ok", user_id=DEVELOPER, user_groups=frozenset({"S0RELEASE"})
    )
    assert not (await dispatch(request, ctx)).error
    assert states(ctx, release)["concurrency"] == "waived"


async def test_ci_items_cannot_be_ticked_by_hand(ctx: Context) -> None:
    release = await new(ctx)
    reply = await run(ctx, "/ready check validation https://ci/1")
    assert reply.error
    assert "verified by CI" in reply.text
    assert states(ctx, release)["validation"] == "pending"


async def test_a_metric_item_is_refused_while_its_metrics_return_nothing(ctx: Context) -> None:
    release = await new(ctx)
    reply = await run(ctx, "/ready check observability https://grafana/1")
    assert reply.error
    assert f"observability of {VERSION} is not verified: 3 of 3 metrics returned no data" in (
        reply.text
    )
    assert "api_request_rate has no client for its source 'demo'" in reply.text
    assert states(ctx, release)["observability"] == "pending"
    refused = ctx.session.exec(select(AuditEvent).where(AuditEvent.outcome == "refused")).one()
    assert refused.action == "ready.check"


async def test_a_metric_item_is_verified_when_every_metric_returns_data(ctx: Context) -> None:
    from bot.sources.demo import DemoSource
    from commands.policy import DemoSource as DemoConfig

    ctx.ports.sources = {"demo": DemoSource(DemoConfig(type="demo"))}
    release = await new(ctx)
    reply = await run(ctx, "/ready check observability")
    assert not reply.error, reply.text
    status = {s.item.id: s for s in evaluate(release, ctx).items}["observability"]
    assert status.state == "passed"
    assert status.actor == MANAGER
    assert status.evidence is not None
    assert status.evidence.startswith("every metric returned data: api_request_rate=")


async def test_ci_item_passes_only_when_every_check_passed(ctx: Context) -> None:
    release = await new(ctx)
    for check in ("lint", "typecheck", "test"):
        record_ci_result(VERSION, "validation", check, CheckStatus.passed, ctx, actor="api")
    assert states(ctx, release)["validation"] == "pending"
    record_ci_result(VERSION, "validation", "db-migrate", CheckStatus.failed, ctx, actor="api")
    assert states(ctx, release)["validation"] == "failed"
    record_ci_result(VERSION, "validation", "db-migrate", CheckStatus.passed, ctx, actor="api")
    assert states(ctx, release)["validation"] == "passed"


async def test_a_complete_checklist_says_so(ctx: Context) -> None:
    release = await new(ctx)
    await complete_checklist(ctx)
    assert evaluate(release, ctx).complete
    assert "ready to roll out" in (await run(ctx, "/ready")).text


async def test_a_pass_older_than_max_age_expires(ctx: Context, clock: FakeClock) -> None:
    release = await new(ctx)
    await complete_checklist(ctx)
    clock.advance(days=89)
    assert evaluate(release, ctx).complete
    clock.advance(days=2)
    assert states(ctx, release)["rotation-documented"] == "expired"
    assert not evaluate(release, ctx).complete


async def test_expiry_reminder_is_posted_once(ctx: Context, clock: FakeClock) -> None:
    await new(ctx)
    await run(ctx, "/ready check rotation-documented https://wiki/rotation")
    clock.advance(days=89, hours=1)
    first = expiring_items(ctx, within=timedelta(days=1))
    second = expiring_items(ctx, within=timedelta(days=1))
    assert [s.item.id for _, s in first] == ["rotation-documented"]
    assert second == []
    reminders = [p for p in ctx.session.exec(select(OutboxPost)) if "⌛" in p.text]
    assert len(reminders) == 1


async def test_unknown_item_lists_the_items(ctx: Context) -> None:
    await new(ctx)
    reply = await run(ctx, "/ready check obsevability x")
    assert reply.error
    assert "items: observability, migration-rollback" in reply.text


async def test_unbalanced_quotes_get_a_usage_line(ctx: Context) -> None:
    reply = await run(ctx, '/ready fail concurrency "p95 hit 4s')
    assert reply.error
    assert reply.text == (
        "Not understood: could not read the arguments: No closing quotation\nUsage: `/ready help`"
    )


async def test_no_release_yet_explains_how_to_register(ctx: Context) -> None:
    reply = await run(ctx, "/ready")
    assert reply.error
    assert "/ready new VERSION" in reply.text


async def test_finished_release_checklist_is_closed(ctx: Context) -> None:
    release = await new(ctx)
    release.state = ReleaseState.complete
    ctx.session.add(release)
    ctx.session.commit()
    reply = await run(ctx, f"/ready check {VERSION} cost-guardrails")
    assert reply.error
    assert "closed" in reply.text


async def test_help_comes_from_the_docstrings(ctx: Context) -> None:
    family_help = (await run(ctx, "/ready help")).text
    assert "`/ready waive [RELEASE] ITEM REASON`" in family_help
    assert "Waive a checklist item with a reason" in family_help
    one = (await run(ctx, "/ops ready help check")).text
    assert "An item verified by metrics is verified now" in one
    assert "/ready" in (await run(ctx, "/ops")).text
    assert (await run(ctx, "/ready help nothing")).error


async def test_every_change_is_in_the_audit_trail(ctx: Context) -> None:
    await new(ctx)
    await complete_checklist(ctx)
    actions = [e.action for e in events_for(f"release:{VERSION}", session=ctx.session)]
    assert actions.count("ready.check") == 4 + 4
    assert actions.count("ready.waive") == 1
    assert actions[0] == "ready.new"
