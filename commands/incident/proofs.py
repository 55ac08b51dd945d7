"""Proofs of the first-response paths: scheduled checks that a backup route, the last known-good
release and a tested rollback still exist, shown wherever a person decides on them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commands.analysis.measure import render_query
from commands.announce import announce
from commands.core import Context
from commands.policy import Metric
from commands.policy_incidents import Proof
from commands.ports import Actuation, ActuatorFailed, Ports
from commands.text import ago, escape, mention, span
from storage.audit import Outcome, record_event
from storage.incident_loop import ProofResult
from storage.proofs import (
    add_proof_result,
    latest_proof_results,
    newest_passed_check,
    previous_result,
)
from storage.releases import last_known_good

# GET `url` with a timeout → (ok, detail); the bot supplies it (commands never speak HTTP).
HttpProbe = Callable[[str, int, timedelta], Awaitable[tuple[bool, str]]]


@dataclass(frozen=True)
class ProofStatus:
    proof: Proof
    result: ProofResult | None

    @property
    def failing(self) -> bool:
        return self.result is not None and not self.result.ok

    def line(self, now: datetime) -> str:
        """`✅ Backup route validated 3h ago` · `❌ Backup route FAILED 20m ago — HTTP 503 (owner
        @sre)` · `⏳ Backup route never checked`; every 'every 1h' as a reminder of freshness."""
        title = escape(self.proof.title)
        if self.result is None:
            return f"⏳ {title}: never checked yet (owner {mention(self.proof.owner)})"
        age = ago(self.result.checked_at, now)
        if self.result.ok:
            return f"✅ {title}: validated {age}"
        return (
            f"❌ {title}: FAILED {age} — {escape(self.result.detail)[:300]} "
            f"(owner {mention(self.proof.owner)})"
        )


def statuses(ctx: Context, incident_class: str | None = None) -> list[ProofStatus]:
    """Every proof's newest result; with a class, only the proofs its first response uses."""
    latest = latest_proof_results(session=ctx.session)
    return [
        ProofStatus(proof, latest.get(proof.id))
        for proof in ctx.policy.proofs
        if incident_class is None or not proof.classes or incident_class in proof.classes
    ]


def guidance_lines(ctx: Context, incident_class: str) -> list[str]:
    found = statuses(ctx, incident_class)
    if not found:
        return []
    now = ctx.now()
    return ["*Proofs of the first-response paths:*", *(s.line(now) for s in found)]


def with_proofs(
    ctx: Context, incident_class: str, text: str, blocks: list[dict[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    """The guidance with each proof's last result, before the lifecycle hint (its last block)."""
    lines = guidance_lines(ctx, incident_class)
    if not lines:
        return text, blocks
    section: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]},
    }
    return text + "\n" + "\n".join(lines), [*blocks[:-1], section, *blocks[-1:]]


def blockers(ctx: Context) -> list[str]:
    """Failing proofs the policy lets block rollouts, as the gate's words."""
    return [
        f"proof {s.proof.id} ({s.proof.title}) is failing since "
        f"{s.result.checked_at:%Y-%m-%d %H:%M} UTC: {s.result.detail[:200]}"
        for s in statuses(ctx)
        if s.proof.blocks_rollouts and s.failing and s.result is not None
    ]


def due(ctx: Context) -> list[Proof]:
    """Proofs never run, or whose last run is older than their interval."""
    latest = latest_proof_results(session=ctx.session)
    now = ctx.now()
    return [
        proof
        for proof in ctx.policy.proofs
        if (last := latest.get(proof.id)) is None or last.checked_at + proof.interval <= now
    ]


# ---------------------------------------------------------------- running one proof


@dataclass(frozen=True)
class ProofPlan:
    """What a proof needs from the database, read before the network is awaited."""

    proof: Proof
    known_good: str | None = None
    # For rollback_age, decided from the checklist at once.
    decided: tuple[bool, str] | None = None


def plan(ctx: Context, proof: Proof) -> ProofPlan:
    if proof.kind == "verify":
        release = last_known_good(session=ctx.session)
        return ProofPlan(proof, known_good=release.version if release is not None else None)
    if proof.kind == "rollback_age":
        assert proof.max_age is not None
        tested = newest_passed_check(proof.evidence_item, session=ctx.session)
        if tested is None:
            return ProofPlan(proof, decided=(False, f"no passed {proof.evidence_item} evidence"))
        age = ctx.now() - tested.recorded_at
        evidence = f" ({tested.evidence})" if tested.evidence else ""
        if age > proof.max_age:
            return ProofPlan(
                proof,
                decided=(
                    False,
                    f"the last tested rollback is {span(age)} old, over {span(proof.max_age)}"
                    + evidence,
                ),
            )
        return ProofPlan(proof, decided=(True, f"last tested rollback {span(age)} ago{evidence}"))
    return ProofPlan(proof)


async def check(
    plan: ProofPlan, ports: Ports, probe: HttpProbe, *, at: datetime
) -> tuple[bool, str]:
    """Run the proof with no transaction open: an HTTP probe, a metric query, or the actuator's
    `verify` of the last known-good release."""
    proof = plan.proof
    if plan.decided is not None:
        return plan.decided
    if proof.kind == "http":
        assert proof.url is not None
        return await probe(proof.url, proof.expect_status, proof.timeout)
    if proof.kind == "metric":
        source = ports.sources.get(proof.source or "")
        if source is None:
            return False, f"metric source {proof.source!r} is not connected"
        metric = Metric(
            id=proof.id, source=proof.source or "", query=proof.query, success=proof.success
        )
        query = render_query(proof.query, release="", wave="", tiers=[], window="5m")
        reading = await source.read(query, metric=metric)
        if reading.error is not None:
            return False, f"the query failed: {reading.error}"
        if reading.value is None:
            return False, "the query returned no data"
        assert proof.success is not None
        ok = proof.success.holds(reading.value)
        return ok, f"{reading.value:g} ({'meets' if ok else 'misses'} {proof.success})"
    if plan.known_good is None:
        return False, "no release is complete yet: there is no last known-good to restore"
    actuation = Actuation(
        action="verify",
        release=plan.known_good,
        wave=None,
        target=plan.known_good,
        reason=f"proof {proof.id}: is the last known-good still deployable?",
        idempotency_key=f"wavegate:proof:{proof.id}:{int(at.timestamp())}",
    )
    try:
        await ports.actuator.send(actuation)
    except ActuatorFailed as exc:
        return (
            False,
            f"the deploy system did not confirm verify of {plan.known_good}: {exc.message}",
        )
    return True, f"the deploy system can deploy {plan.known_good}"


def record_outcome(ctx: Context, proof: Proof, ok: bool, detail: str) -> ProofResult:
    """Store the result; a proof that starts failing is said once to its owner (and once more
    when it passes again)."""
    result = add_proof_result(proof.id, ok=ok, detail=detail, at=ctx.now(), session=ctx.session)
    assert result.id is not None
    before = previous_result(proof.id, result.id, session=ctx.session)
    changed = (before is None and not ok) or (before is not None and before.ok != ok)
    record_event(
        actor="wavegate",
        action="proof.check",
        subject=f"proof:{proof.id}",
        outcome=Outcome.ok if ok else Outcome.failed,
        reason=detail[:4000],
        at=ctx.now(),
        session=ctx.session,
    )
    if changed:
        blocks = (
            " Rollout starts and promotions are blocked until it passes."
            if (proof.blocks_rollouts and not ok)
            else ""
        )
        text = (
            f"❌ Proof *{escape(proof.title)}* ({proof.id}) FAILED: {escape(detail)}.{blocks}"
            if not ok
            else f"✅ Proof *{escape(proof.title)}* ({proof.id}) passes again: {escape(detail)}"
        )
        announce(ctx, text, channel=proof.owner)
    return result
