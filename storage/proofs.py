"""Proof results: the newest result of each proof and the newest passed one."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.incident_loop import ProofResult
from storage.models import CheckResult, CheckStatus


def add_proof_result(
    proof: str, *, ok: bool, detail: str, at: datetime, session: Session
) -> ProofResult:
    result = ProofResult(proof=proof, ok=ok, detail=detail[:2000], checked_at=at)
    session.add(result)
    session.flush()
    return result


def latest_proof_results(*, session: Session) -> dict[str, ProofResult]:
    """The newest result of each proof that ever ran."""
    latest: dict[str, ProofResult] = {}
    query = select(ProofResult).order_by(col(ProofResult.checked_at), col(ProofResult.id))
    for result in session.exec(query):
        latest[result.proof] = result
    return latest


def last_passed(proof: str, *, session: Session) -> ProofResult | None:
    query = (
        select(ProofResult)
        .where(ProofResult.proof == proof, col(ProofResult.ok).is_(True))
        .order_by(col(ProofResult.checked_at).desc(), col(ProofResult.id).desc())
    )
    return session.exec(query).first()


def previous_result(proof: str, before_id: int, *, session: Session) -> ProofResult | None:
    query = (
        select(ProofResult)
        .where(ProofResult.proof == proof, col(ProofResult.id) < before_id)
        .order_by(col(ProofResult.id).desc())
    )
    return session.exec(query).first()


def proof_results_between(start: datetime, end: datetime, *, session: Session) -> list[ProofResult]:
    query = (
        select(ProofResult)
        .where(ProofResult.checked_at >= start, ProofResult.checked_at < end)
        .order_by(col(ProofResult.checked_at))
    )
    return list(session.exec(query))


def newest_passed_check(item: str, *, session: Session) -> CheckResult | None:
    """The newest passed result of a checklist item over every release (a tested rollback)."""
    query = (
        select(CheckResult)
        .where(CheckResult.item == item, CheckResult.status == CheckStatus.passed)
        .order_by(col(CheckResult.recorded_at).desc(), col(CheckResult.id).desc())
    )
    return session.exec(query).first()
