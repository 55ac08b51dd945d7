"""A metric's latest value as the status shows it: the value, or why there is none now."""

from __future__ import annotations

from commands.analysis.judge import MetricVerdict, Verdict
from commands.policy import Metric
from commands.text import escape, span


def value_text(value: float | None, metric: Metric) -> str:
    if value is None:
        return "no value yet"
    unit = f" {metric.unit}" if metric.unit else ""
    return f"{value:.4g}{unit}"


# A poll's detail that says the source answered with nothing (commands/analysis/measure.py,
# checks.py): the latest value is then not current.
NOTHING_READ = ("no samples in the window", "no number (NaN)", "too little traffic to judge")


def latest_text(mv: MetricVerdict) -> str:
    """The latest value, or, when the latest poll read nothing (the source failed, or answered
    with no samples), why: never an older poll's value shown as if it were current."""
    cause = mv.last_detail.split("; ")[0]
    if mv.consecutive_errors:
        polls = "poll" if mv.consecutive_errors == 1 else f"{mv.consecutive_errors} polls"
        about = span(mv.metric.interval * mv.consecutive_errors)
        text = f"no data for the last {polls} (~{about})"
        # An error verdict's reason says the cause next; a metric still judged says it here.
        return text if mv.verdict == Verdict.error else f"{text}: {escape(cause)}"
    if mv.last_detail.startswith(NOTHING_READ):
        if mv.verdict == Verdict.inconclusive:
            return "no value in the latest poll"
        return f"no value in the latest poll: {escape(cause)}"
    return value_text(mv.latest, mv.metric)
