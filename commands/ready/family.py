"""`/ready`: the production-readiness checklist of a release."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from commands.access import require
from commands.core import Context, Family, GateClosed, Invocation, NotFound, Reply
from commands.incident import proofs
from commands.limits import (
    HEADER_TEXT,
    MESSAGE_BLOCKS,
    MESSAGE_TEXT,
    SECTION_TEXT,
    fit_text,
    pack_sections,
)
from commands.ready.checklist import (
    ACTION_OF,
    Checklist,
    ItemState,
    ItemStatus,
    check_by_person,
    evaluate,
    find_item,
    record_result,
    register_release,
)
from commands.ready.thread import pointer
from commands.ready.verification import verify_and_record
from commands.text import ago, escape, mention, plural, said, unwrap_link
from storage.models import CheckStatus, Release
from storage.releases import get_release, newest_unfinished_release

family = Family("ready", "production-readiness checklist of a release", default="status")

ICONS = {
    ItemState.passed: "✅",
    ItemState.waived: "⚪",
    ItemState.failed: "❌",
    ItemState.expired: "⌛",
    ItemState.pending: "⏳",
}

VERIFIED_BY = {"person": "a person", "ci": "CI", "metric": "metrics"}


def pick_release(inv: Invocation) -> tuple[Release, list[str]]:
    """The first word is the release when one of that name exists; else the newest unfinished."""
    ctx = inv.ctx
    if inv.words and (named := get_release(inv.words[0], session=ctx.session)) is not None:
        return named, inv.words[1:]
    newest = newest_unfinished_release(session=ctx.session)
    if newest is None:
        raise NotFound(
            "no release candidate is open. Register one with `/ready new VERSION` "
            "(CI can use POST /api/v1/releases)."
        )
    return newest, list(inv.words)


@family.command("status", "/ready [RELEASE]")
async def show_checklist(inv: Invocation) -> Reply:
    """Checklist status for a release: each item, its owner, state, evidence and age.

    Without RELEASE: the newest release that is not complete.
    """
    if inv.words and get_release(inv.words[0], session=inv.ctx.session) is None:
        raise NotFound(f"no release {inv.words[0]!r} is registered", usage=inv.sub.usage)
    if len(inv.words) > 1:
        raise inv.usage_error("too many words: give at most one release")
    release, _ = pick_release(inv)
    return render_checklist(evaluate(release, inv.ctx), inv.ctx)


@family.command("new", "/ready new RELEASE")
async def new_release(inv: Invocation) -> Reply:
    """Register a release candidate (CI usually does this with POST /api/v1/releases)."""
    if len(inv.words) != 1:
        raise inv.usage_error("give exactly one release version")
    require(inv.ctx.policy, "ready.new", inv.request, subject=f"release:{inv.words[0][:100]}")
    release = register_release(inv.words[0], inv.ctx, actor=inv.actor)
    count = plural(len(inv.ctx.policy.checklist), "item")
    text = (
        f"Registered release candidate {release.version}; its checklist has {count}. "
        f"See it with `/ready {release.version}`."
    )
    return Reply(" ".join(filter(None, [text, pointer(inv.ctx, release)])))


# Acknowledged first: an item verified by metrics is read from its sources, which may take a
# source's timeout.
@family.command("check", "/ready check [RELEASE] ITEM [EVIDENCE]", answers_in_ack=False)
async def check_item(inv: Invocation) -> Reply:
    """Mark a checklist item as passed, with a link to the evidence.

    An item verified by metrics is verified now: it passes when every metric it lists returns
    data. Items verified by CI are reported by CI; waive them if CI cannot.
    """
    release, words = pick_release(inv)
    if not words:
        raise inv.usage_error("missing ITEM")
    item = find_item(inv.ctx, words[0])
    evidence = " ".join(unwrap_link(w) for w in words[1:]).strip() or None
    subject = f"release:{release.version}"
    require(inv.ctx.policy, "ready.check", inv.request, subject=subject)
    if item.verify.by == "metric":
        verification = await verify_and_record(release, item, inv.ctx, actor=inv.actor)
        if not verification.passed:
            raise GateClosed(verification.explain(), action="ready.check", subject=subject)
        return _after_change(release, item.id, "verified", inv.ctx)
    check_by_person(item, evidence=evidence, subject=subject)
    record_result(release, item, CheckStatus.passed, inv.ctx, actor=inv.actor, evidence=evidence)
    return _after_change(release, item.id, "passed", inv.ctx)


@family.command("fail", "/ready fail [RELEASE] ITEM REASON")
async def fail_item(inv: Invocation) -> Reply:
    """Mark a checklist item as failed, saying why."""
    return _record_with_reason(inv, CheckStatus.failed)


@family.command("waive", "/ready waive [RELEASE] ITEM REASON")
async def waive_item(inv: Invocation) -> Reply:
    """Waive a checklist item with a reason; release managers may (the policy says who)."""
    return _record_with_reason(inv, CheckStatus.waived)


def _record_with_reason(inv: Invocation, status: CheckStatus) -> Reply:
    """`fail` and `waive`: an item and the reason, which is required."""
    release, words = pick_release(inv)
    if not words:
        raise inv.usage_error("missing ITEM and REASON")
    item = find_item(inv.ctx, words[0])
    reason = " ".join(words[1:]).strip()
    if not reason:
        verb = "failed" if status == CheckStatus.failed else "is waived"
        raise inv.usage_error(f"say why {item.id} {verb}")
    require(inv.ctx.policy, ACTION_OF[status], inv.request, subject=f"release:{release.version}")
    record_result(release, item, status, inv.ctx, actor=inv.actor, reason=reason)
    return _after_change(release, item.id, status, inv.ctx)


def _after_change(release: Release, item_id: str, state: str, ctx: Context) -> Reply:
    checklist = evaluate(release, ctx)
    done = len(checklist.items) - len(checklist.missing)
    summary = (
        f"{item_id} {state} for {release.version}. "
        f"{done} of {plural(len(checklist.items), 'item')} done"
    )
    summary += "; the checklist is complete." if checklist.complete else "."
    return Reply(" ".join(filter(None, [summary, pointer(ctx, release)])))


# ---------------------------------------------------------------- views


def _line(status: ItemStatus, ctx: Context) -> str:
    parts = [f"{ICONS[status.state]} *{status.item.id}* — {status.item.title}"]
    facts = [status.state.value]
    if status.at is not None:
        facts[0] += f" {ago(status.at, ctx.now())}"
        if status.actor:
            facts[0] += f" by {mention(status.actor)}"
    if status.item.owner:
        facts.append(f"owner {mention(status.item.owner)}")
    facts.append(f"verified by {VERIFIED_BY[status.item.verify.by]}")
    if status.evidence:
        facts.append(f"evidence: {escape(status.evidence)}")
    if status.reason:
        facts.append(f"reason: {escape(status.reason)}")
    if status.checks:
        facts.append(" ".join(f"{name}:{state}" for name, state in status.checks))
    if status.item.max_age is not None and status.at is not None and status.state.done:
        facts.append(f"expires {ago(status.at + status.item.max_age, ctx.now())}")
    parts.append("    " + " · ".join(facts))
    return "\n".join(parts)


def render_checklist(checklist: Checklist, ctx: Context) -> Reply:
    release = checklist.release
    done = len(checklist.items) - len(checklist.missing)
    headline = (
        f"Readiness of {release.version} ({said(release.state)}): "
        f"{done} of {len(checklist.items)} done"
    )
    headline += " — ready to roll out." if checklist.complete else "."
    lines = [_line(status, ctx) for status in checklist.items]
    if not checklist.items:
        lines = ["The policy defines no checklist items."]
    now = ctx.now()
    # The paths an incident's first response relies on, so a release manager sees them before
    # starting (a failing one that blocks rollouts is listed among the start's blockers).
    proof_lines = [status.line(now) for status in proofs.statuses(ctx)]
    if proof_lines:
        lines.append("*Proofs of the first-response paths:*\n" + "\n".join(proof_lines))
    # Within Slack's 4,000 characters; the blocks carry every item.
    text = fit_text(
        "\n".join([headline, *lines]), MESSAGE_TEXT, more="… the blocks list every item."
    )
    blocks = [
        HeaderBlock(text=fit_text(f"Readiness: {release.version}", HEADER_TEXT)),
        SectionBlock(text=MarkdownTextObject(text=fit_text(headline, SECTION_TEXT))),
        DividerBlock(),
    ]
    room = MESSAGE_BLOCKS - len(blocks) - 2
    # One section per item while they fit; packed several to a section beyond that.
    packed = (
        [
            SectionBlock(text=MarkdownTextObject(text=fit_text(line, SECTION_TEXT))).to_dict()
            for line in lines
        ]
        if len(lines) <= room
        else pack_sections(lines)
    )
    if len(packed) > room:
        hidden = len(packed) - room + 1
        packed = packed[: room - 1] + pack_sections(
            [f"… and {hidden} more sections of items: see GET /api/v1/releases or the App Home."]
        )
    footer = ContextBlock(
        elements=[
            MarkdownTextObject(
                text="`/ready check ITEM EVIDENCE` · `/ready fail ITEM REASON` · "
                "`/ready waive ITEM REASON`"
            )
        ]
    )
    rendered = [block.to_dict() for block in blocks] + packed + [footer.to_dict()]
    return Reply(text, blocks=rendered)
