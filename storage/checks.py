"""Checklist result queries: append-only history, newest result per item (and CI check) counts."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import CheckResult, CheckStatus


def record_check(
    *,
    release_id: int,
    item: str,
    status: str,
    actor: str,
    at: datetime,
    session: Session,
    check: str = "",
    evidence: str | None = None,
    reason: str | None = None,
) -> CheckResult:
    result = CheckResult(
        release_id=release_id,
        item=item,
        check=check,
        status=CheckStatus(status),
        evidence=evidence,
        reason=reason,
        actor=actor,
        recorded_at=at,
    )
    session.add(result)
    session.flush()
    return result


def latest_results(release_id: int, *, session: Session) -> dict[tuple[str, str], CheckResult]:
    """(item, check) → newest result, for one release."""
    query = (
        select(CheckResult)
        .where(CheckResult.release_id == release_id)
        .order_by(col(CheckResult.recorded_at), col(CheckResult.id))
    )
    latest: dict[tuple[str, str], CheckResult] = {}
    for result in session.exec(query):
        latest[(result.item, result.check)] = result
    return latest
