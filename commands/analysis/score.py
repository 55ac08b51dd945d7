"""Kayenta's summary score over a wave's compared metrics, from their outcomes alone.

The arithmetic of `baseline.score_comparisons` (which needs scipy's results), for the judge,
which only has each metric's latest outcome and must not import scipy.
"""

from __future__ import annotations

from collections.abc import Sequence


def wave_score(
    outcomes: Sequence[str], *, pass_score: float, marginal_score: float
) -> tuple[str, str]:
    """(successful | inconclusive | failed, why): score = 100 x passed / (passed + failed);
    inconclusive metrics are left out, and half or more of them undecided is inconclusive."""
    passed = sum(o == "successful" for o in outcomes)
    failed = sum(o == "failed" for o in outcomes)
    undecided = len(outcomes) - passed - failed
    tally = f"{passed} passed, {failed} failed, {undecided} inconclusive"
    if not outcomes:
        return "inconclusive", "no metrics compared"
    if passed + failed == 0 or 2 * undecided >= len(outcomes):
        return "inconclusive", f"half or more of the metrics undecided ({tally})"
    score = round(100.0 * passed / (passed + failed), 2)
    shown = f"score {score:g} ({tally})"
    if score >= pass_score:
        return "successful", f"{shown}: at least {pass_score:g} passes"
    if score >= marginal_score:
        return (
            "inconclusive",
            f"{shown}: marginal, below {pass_score:g} but at least {marginal_score:g}",
        )
    return "failed", f"{shown}: below {marginal_score:g}"
