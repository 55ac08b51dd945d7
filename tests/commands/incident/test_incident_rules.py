"""Incident rules on SQLite: argument parsing, channel names, reminders, the monthly review, and
bad input changing nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.slack.chat import SlackIncidentChat
from commands.core import Conflict, Context, Request, UsageError
from commands.incident.improve_text import post_monthly_review
from commands.incident.parse import channel_name, parse_declare, parse_month, slugify
from commands.incident.reminders import remind_due
from commands.incident.review import build_review, render_review
from commands.policy import IncidentClass, Policy
from commands.router import dispatch
from storage.models import Incident, IncidentStatus, OutboxPost, TimelineEntry
from storage.schema import metadata
from tests.conftest import COMMANDER, DEVELOPER, INCIDENTS, run
from tests.support.clock import FakeClock
from tests.support.incidents import running_rollout
from tests.support.slack import BOT_TOKEN, FakeSlack

USAGE = "/incident declare [CLASS] [SEV] SUMMARY"


@pytest.fixture
def chat_ctx(ctx: Context, slack: FakeSlack) -> Context:
    """The command context with the real Slack port, talking to the fake Slack."""
    ctx.ports.chat = SlackIncidentChat(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url))
    return ctx


def outbox(ctx: Context) -> list[OutboxPost]:
    return list(ctx.session.exec(select(OutboxPost).order_by(col(OutboxPost.id))))


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["migration-regression", "db", "down"], ("migration-regression", 2, "db down")),
        (["Provider-Outage", "sev1", "LLM", "503s"], ("provider-outage", 1, "LLM 503s")),
        (
            ["sandbox-instability", "4", "slow", "previews"],
            ("sandbox-instability", 4, "slow previews"),
        ),
        (["provider-outage", "several", "regions"], ("provider-outage", 2, "several regions")),
        (["provider-outage", "500", "errors"], ("provider-outage", 2, "500 errors")),
    ],
)
def test_declare_arguments(
    policy: Policy, words: list[str], expected: tuple[str, int, str]
) -> None:
    args = parse_declare(words, policy, USAGE)
    assert (args.incident_class, args.severity, args.summary) == expected


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["nope", "x"], "unknown incident class 'nope'; classes: provider-outage (sev2)"),
        (["provider-outage", "sev5", "x"], "invalid severity 'sev5'"),
        (["provider-outage", "0", "x"], "invalid severity '0'"),
        (["provider-outage", "sev2"], "missing SUMMARY"),
        (["provider-outage"], "missing SUMMARY"),
    ],
)
def test_bad_declare_arguments_say_what_is_wrong(
    policy: Policy, words: list[str], message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse_declare(words, policy, USAGE)
    assert message in caught.value.message
    assert caught.value.usage == USAGE


def test_channel_names_fit_slack_and_cut_at_a_word() -> None:
    day = datetime(2026, 11, 27, 23, 59, tzinfo=UTC)
    assert (
        slugify("DB migration: \u2018users\u2019 table — failed!")
        == "db-migration-users-table-failed"
    )
    assert channel_name("inc", day, 3, "Café crème is down") == "inc-20261127-3-cafe-creme-is-down"
    long = channel_name("inc", day, 12, "word " * 40, suffix=3)
    assert len(long) <= 80
    assert long.endswith("-word-3")
    assert "--" not in long
    assert channel_name("inc", day, 1, "🔥🔥") == "inc-20261127-1"


@given(summary=st.text(max_size=300), number=st.integers(1, 10_000), suffix=st.integers(1, 20))
def test_any_summary_gives_a_valid_slack_channel_name(
    summary: str, number: int, suffix: int
) -> None:
    name = channel_name(
        "incident-prefix", datetime(2026, 1, 1, tzinfo=UTC), number, summary, suffix=suffix
    )
    assert len(name) <= 80
    assert all(c.isascii() and (c.isalnum() or c == "-") and not c.isupper() for c in name)
    assert not name.endswith("-")


def test_review_months(policy: Policy) -> None:
    assert parse_month("2026-02", "u") == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert parse_month("2026-12", "u")[1] == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in ("2026-13", "26-01", "2026/01", "last"):
        with pytest.raises(UsageError):
            parse_month(bad, "u")


# ---------------------------------------------------------------- reminders


async def test_reminders_follow_the_severity_cadence_and_any_update_silences_them(
    chat_ctx: Context, clock: FakeClock
) -> None:
    ctx = chat_ctx
    await run(ctx, "/incident declare auth-policy-failure tokens in logs", user=COMMANDER)
    posts_before = len(outbox(ctx))
    clock.advance(minutes=29)
    assert remind_due(ctx) == []
    clock.advance(minutes=1)
    (reminded,) = remind_due(ctx)
    ctx.session.commit()
    assert reminded.id == 1
    (reminder,) = outbox(ctx)[posts_before:]
    assert reminder.channel == "C0INC0001"
    assert "no update on #1 for 30m (sev1 updates are due every 30m)" in reminder.text
    # The job running again at once (or twice) posts nothing more.
    assert remind_due(ctx) == []
    clock.advance(minutes=10)
    await run(ctx, "/incident status revoked the exposed tokens", user=DEVELOPER)
    clock.advance(minutes=29)
    assert remind_due(ctx) == []
    clock.advance(minutes=1)
    assert [i.id for i in remind_due(ctx)] == [1]
    kinds = [
        e.kind for e in ctx.session.exec(select(TimelineEntry).order_by(col(TimelineEntry.id)))
    ]
    assert kinds.count("reminder") == 2


async def test_resolved_incidents_are_not_reminded(chat_ctx: Context, clock: FakeClock) -> None:
    await run(chat_ctx, "/incident declare provider-outage 3 flaky upstream", user=COMMANDER)
    await run(chat_ctx, "/incident resolve", user=COMMANDER)
    clock.advance(hours=5)
    assert remind_due(chat_ctx) == []


# ---------------------------------------------------------------- the review


def seed(
    ctx: Context, cls: str, declared: datetime, mitigate: int | None, resolve: int | None
) -> None:
    ctx.session.add(
        Incident(
            incident_class=cls,
            severity=2,
            summary=f"{cls} at {declared:%d %H:%M}",
            channel=f"C0{cls[:3].upper()}{declared:%d%H}",
            declared_by=COMMANDER,
            declared_at=declared,
            last_update_at=declared,
            mitigated_at=declared + timedelta(minutes=mitigate) if mitigate is not None else None,
            resolved_at=declared + timedelta(minutes=resolve) if resolve is not None else None,
            status=IncidentStatus.resolved if resolve is not None else IncidentStatus.declared,
        )
    )
    ctx.session.commit()


@pytest.fixture
def review_ctx(ctx: Context, policy: Policy) -> Context:
    """The blueprint's classes plus one with no automation, and a month of incidents."""
    classes = dict(policy.incidents)
    classes["cert-expiry"] = IncidentClass(title="Certificate expiry", first_action="Renew it")
    ctx.policy = policy.model_copy(update={"incidents": classes})
    nov = datetime(2026, 11, 1, tzinfo=UTC)
    seed(ctx, "provider-outage", nov + timedelta(days=2), 10, 60)
    seed(ctx, "provider-outage", nov + timedelta(days=9), 30, 90)
    seed(ctx, "provider-outage", nov + timedelta(days=20), 20, None)
    seed(ctx, "cert-expiry", nov + timedelta(days=3), None, 40)
    seed(ctx, "cert-expiry", nov + timedelta(days=15), 5, 120)
    seed(ctx, "migration-regression", nov + timedelta(days=4), 15, 45)
    seed(ctx, "migration-regression", nov - timedelta(days=1), 1, 2)  # October
    seed(ctx, "cert-expiry", datetime(2026, 12, 1, tzinfo=UTC), 1, 2)  # December
    return ctx


def test_review_figures_on_seeded_incidents(review_ctx: Context) -> None:
    review = build_review(
        review_ctx, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    )
    figures = [
        (f.incident_class, f.count, f.median_to_mitigate, f.median_to_resolve)
        for f in review.classes
    ]
    minutes = timedelta(minutes=1)
    assert figures == [
        ("provider-outage", 3, 20 * minutes, 75 * minutes),
        # Resolved without a separate mitigation: mitigated when resolved (40m).
        ("cert-expiry", 2, 22.5 * minutes, 80 * minutes),
        ("migration-regression", 1, 15 * minutes, 45 * minutes),
    ]
    assert [f.incident_class for f in review.classes if f.recurring_without_automation] == [
        "cert-expiry"
    ]
    text = render_review(review).text
    assert "Incident review 2026-11: 6 incidents" in text
    assert "1. provider-outage · 3 · 20m · 1h 15m" in text
    assert "2. cert-expiry · 2 · 22m · 1h 20m" in text
    assert (
        "Recurring with no automation — convert them into automated mitigations: cert-expiry"
        in text
    )


async def test_review_command_takes_a_month_and_refuses_bad_ones(review_ctx: Context) -> None:
    reply = await run(review_ctx, "/incident review 2026-10")
    assert reply.text.startswith("Incident review 2026-10: 1 incident")
    reply = await run(review_ctx, "/incident review 2026-10-01")
    assert reply.error
    assert "Usage: `/incident review [YYYY-MM]`" in reply.text


def test_monthly_review_is_posted_once_on_the_first(review_ctx: Context, clock: FakeClock) -> None:
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert post_monthly_review(review_ctx)
    review_ctx.session.commit()
    assert not post_monthly_review(review_ctx)
    (post,) = outbox(review_ctx)
    assert post.channel == INCIDENTS
    assert post.text.startswith("Incident review 2026-11: 6 incidents")


# ---------------------------------------------------------------- bad input changes nothing

WATCHED = [t for t in metadata.sorted_tables if t.name not in {"audit_event", "alembic_version"}]


def snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as connection:
        return {
            t.name: sorted((tuple(r) for r in connection.execute(sa.select(t))), key=repr)
            for t in WATCHED
        }


free_text = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(["sev9", "sev0", "#7", "#1", "<@U0X>", '"', "nope", "0", "—", " "]),
        max_size=5,
    ).map(" ".join),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=free_text)
def test_bad_incident_input_gets_usage_and_changes_nothing(
    engine: Engine, policy: Policy, clock: FakeClock, text: str
) -> None:
    """With one incident open elsewhere: an unknown class, a bad severity or id, or an empty
    update is refused with the usage line, and no table changes."""
    with Session(engine, expire_on_commit=False) as session:
        if session.get(Incident, 1) is None:
            session.add(
                Incident(
                    incident_class="provider-outage",
                    severity=2,
                    summary="seeded",
                    channel="C0SEEDED",
                    declared_by=COMMANDER,
                    declared_at=clock(),
                    last_update_at=clock(),
                )
            )
            session.commit()
    before = snapshot(engine)
    lines = [
        f"declare not-a-class {text}",
        f"declare provider-outage sev9 {text}",
        f"status #99 {text}",
        "status " + " " * len(text),
        f"lead {text.replace('<@', '')}x y",
        f"review {text}x",
    ]
    for line in lines:
        with Session(engine, expire_on_commit=False) as session:
            ctx = Context(session=session, policy=policy, clock=clock)
            reply = asyncio.run(dispatch(Request("/incident", line, DEVELOPER), ctx))
        assert reply.error, line
        # Unbalanced quotes are refused by the router before the family is known, without a
        # family's usage line.
        unreadable = "could not read the arguments" in reply.text
        assert unreadable or "Usage: `/incident" in reply.text, (line, reply.text)
        assert snapshot(engine) == before, line


# ---------------------------------------------------------------- on SQLite and PostgreSQL


async def test_storage_rules_hold_on_every_database(
    any_engine: Engine, policy: Policy, clock: FakeClock, slack: FakeSlack
) -> None:
    from commands.incident.lifecycle import pin_message, tick_step
    from storage.incidents import list_incidents, open_incidents

    with Session(any_engine, expire_on_commit=False) as session:
        ctx = Context(session=session, policy=policy, clock=clock)
        ctx.ports.chat = SlackIncidentChat(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url))
        reply = await run(ctx, "/incident declare provider-outage 1 upstream 503s", user=COMMANDER)
        assert reply.text.startswith("Declared incident #1")
        request = Request("/incident", "", DEVELOPER)
        tick_step(ctx, 1, 2, request=request)
        session.commit()
        # A second tick of the same step: refused by the unique constraint, nothing recorded.
        with pytest.raises(Conflict):
            tick_step(ctx, 1, 2, request=request)
        session.rollback()
        for _ in range(2):
            pin_message(ctx, channel="C0INC0001", ts="1.1", text="x", author=None, actor=DEVELOPER)
            session.commit()
        assert (
            pin_message(ctx, channel="C0ELSE", ts="1.1", text="x", author=None, actor=DEVELOPER)
            is None
        )
        kinds = [
            e.kind for e in session.exec(select(TimelineEntry).order_by(col(TimelineEntry.id)))
        ]
        assert kinds == ["declared", "automation", "step", "pin"]
        assert [i.id for i in open_incidents(session=session, max_severity=1)] == [1]
        assert list_incidents(session=session, status="resolved") == []


# ---------------------------------------------------------------- resuming during an incident


async def test_a_resume_during_the_incident_joins_its_timeline(
    chat_ctx: Context, clock: FakeClock
) -> None:
    running_rollout(chat_ctx.session, "1.0", at=clock())
    reply = await run(chat_ctx, "/incident declare migration-regression orders index missing")
    assert not reply.error, reply.text
    clock.advance(minutes=5)
    assert not (await run(chat_ctx, "/wave resume 1.0")).error
    entries = chat_ctx.session.exec(
        select(TimelineEntry).where(TimelineEntry.kind == "rollout")
    ).all()
    assert [(e.actor, e.text) for e in entries] == [
        ("U0RM1", "resumed 1.0 (wave 1 (staging)) while the incident is open")
    ]
    # Once resolved, the incident no longer hears of the rollout.
    assert not (await run(chat_ctx, "/wave pause 1.0 checking", user=COMMANDER)).error
    assert not (await run(chat_ctx, "/incident resolve index rebuilt", user=COMMANDER)).error
    assert not (await run(chat_ctx, "/wave resume 1.0")).error
    count = len(
        chat_ctx.session.exec(select(TimelineEntry).where(TimelineEntry.kind == "rollout")).all()
    )
    assert count == 1
