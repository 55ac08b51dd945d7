"""Every reply and post of the readiness flow is in plain words: no stored state names
(`rolled_back`), no `None`/`null`, no config keys (`on_empty`), no "(s)" plurals, no
permission ids, nothing snake_case but the names the policy itself gives."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import col, select

from commands.core import Context, Reply
from commands.ready.checklist import record_ci_result
from commands.ready.expiry import expiring_items
from storage.models import CheckStatus, OutboxPost, Release, ReleaseState
from storage.releases import get_release
from tests.conftest import DEVELOPER, run
from tests.support.clock import FakeClock

FORBIDDEN = ["rolled_back", "rolling_out", "null", "None", "on_empty", "(s)", "min_samples"]
PERMISSION_ID = re.compile(r"\b(?:ready|wave|rollback|incident)\.[a-z]+\b")
SNAKE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def plain(text: str, ctx: Context) -> list[str]:
    """The internal words in `text` (the policy's own names with underscores are allowed)."""
    allowed = {m.id for m in ctx.policy.metrics} | {i.id for i in ctx.policy.checklist}
    found = [word for word in FORBIDDEN if word in text]
    found += [m for m in SNAKE.findall(text) if m not in allowed]
    found += PERMISSION_ID.findall(text)
    return found


def block_texts(value: object) -> list[str]:
    """Every text a person sees in blocks (not the block kit's own keys)."""
    if isinstance(value, dict):
        inner = value.get("text")
        own = [inner] if isinstance(inner, str) else []
        return own + [t for v in value.values() for t in block_texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in block_texts(v)]
    return []


async def test_every_reply_and_post_of_the_readiness_flow_is_plain(
    ctx: Context, clock: FakeClock
) -> None:
    replies: list[Reply] = []

    async def say(line: str, user: str | None = None) -> Reply:
        reply = await (run(ctx, line) if user is None else run(ctx, line, user=user))
        replies.append(reply)
        return reply

    await say("/ready new 1.0")
    await say("/ready new 1.0")  # already registered
    await say("/ready new status")  # a command word
    await say("/ready new has space")
    await say("/ready")
    await say("/ready 1.0")
    await say("/ready 9.9")  # not registered
    await say("/ready check 1.0 migration-rollback https://wiki/rehearsal")
    await say("/ready check 1.0 concurrency")  # needs evidence
    await say("/ready check 1.0 validation")  # verified by CI
    await say("/ready check 1.0 nope")
    await say("/ready check 1.0 observability")  # metrics: no data from the demo source yet
    await say("/ready fail 1.0 concurrency")  # no reason
    await say("/ready fail 1.0 concurrency p95 3.1s under load")
    await say("/ready waive 1.0 cost-guardrails not this release", user=DEVELOPER)  # refused
    await say("/ready waive 1.0 cost-guardrails budgets land next sprint")
    await say("/ready chek 1.0 concurrency")  # a typo
    await say("/ready help")
    await say("/ready help check")
    record_ci_result("1.0", "validation", "lint", CheckStatus.failed, ctx, actor="api")
    record_ci_result("1.0", "validation", "test", CheckStatus.passed, ctx, actor="api")
    await say("/ready 1.0")
    await say("/ready check 1.0 rotation-documented https://wiki/rotation")
    clock.advance(timedelta(days=90))
    expiring_items(ctx, within=timedelta(days=1))
    await say("/ready 1.0")
    release = get_release("1.0", session=ctx.session)
    assert release is not None
    for state in (ReleaseState.rolling_out, ReleaseState.rolled_back):
        release.state = state
        ctx.session.add(release)
        ctx.session.commit()
        await say("/ready 1.0")
        await say("/ready fail 1.0 concurrency still slow")  # closed once rolled back
    ctx.session.commit()

    posts = ctx.session.exec(select(OutboxPost).order_by(col(OutboxPost.id))).all()
    assert len(posts) > 5
    # Registration, checks, CI results and the expiry reminder: replies in the one thread.
    assert {(p.message_key, p.thread_key) for p in posts} == {
        ("readiness:1", None),
        (None, "readiness:1"),
    }
    assert any(p.text.startswith("⌛") and p.thread_key for p in posts)
    texts = [r.text for r in replies] + [p.text for p in posts]
    shown = [t for r in replies for t in block_texts(r.blocks or [])]
    assert any(t.startswith("Readiness of 1.0 (rolled back)") for t in shown)
    texts += shown
    bad = {text: words for text in texts if (words := plain(text, ctx))}
    for text, words in bad.items():
        print("BAD", words, "::", text[:400].replace(chr(10), " | "))
    assert bad == {}
    closed = replies[-1].text
    assert "1.0 is rolled back; its checklist is closed" in closed
    assert ctx.session.exec(select(Release)).all()
