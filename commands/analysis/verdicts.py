"""A wave's verdict from its stored polls, and what a metric line links to (the query as sent,
in the source's UI)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from commands.analysis.judge import WaveVerdict, judge_metric, judge_tally, judge_wave
from commands.analysis.measure import WARNINGS, Phase, Poll
from commands.analysis.tally import Tally
from commands.policy import Metric, Policy, Wave
from storage.measurements import StoredPoll

EMPTY = Tally()


def polls_of(rows: Sequence[StoredPoll]) -> list[Poll]:
    return [
        Poll(Phase(r.phase), r.value, r.detail or "", at=r.taken_at, volume=r.volume) for r in rows
    ]


def judge_rows(
    policy: Policy, wave: Wave, rows: Mapping[str, Sequence[StoredPoll]], *, window_passed: bool
) -> WaveVerdict:
    """The wave's verdict from the polls taken since it started (or was resumed)."""
    verdicts = [
        judge_metric(metric, polls_of(rows.get(metric.id, [])), window_passed=window_passed)
        for metric in policy.wave_metrics(wave)
    ]
    return judge_wave(verdicts, window_passed=window_passed, score=wave.score)


def judge_tallies(
    policy: Policy, wave: Wave, tallies: Mapping[str, Tally], *, window_passed: bool
) -> WaveVerdict:
    """The wave's verdict from its metrics' tallies (commands/analysis/standing.py): the same
    verdict as `judge_rows` on the polls they count."""
    verdicts = [
        judge_tally(metric, tallies.get(metric.id, EMPTY), window_passed=window_passed)
        for metric in policy.wave_metrics(wave)
    ]
    return judge_wave(verdicts, window_passed=window_passed, score=wave.score)


def query_sent(detail: str) -> str:
    """The query a poll sent, from its detail (`…; query: QUERY; warnings: …`)."""
    _, found, rest = detail.partition("query: ")
    if not found:
        return ""
    return rest.split(f"; {WARNINGS}")[0].split("; baseline query: ")[0].strip()


def query_link(policy: Policy, metric: Metric, query: str) -> str | None:
    """The query in its source's UI (`ui_url`), or None."""
    source = policy.sources.get(metric.source)
    ui_url = getattr(source, "ui_url", None)
    if not ui_url or not query:
        return None
    return f"{ui_url.rstrip('/')}/graph?" + urlencode({"g0.expr": query, "g0.tab": "0"})


def metric_links(policy: Policy, judgement: WaveVerdict | None) -> dict[str, str]:
    """metric id → its last query as sent, in its source's UI (only where there is a ui_url)."""
    if judgement is None:
        return {}
    links = {}
    for mv in judgement.metrics:
        link = query_link(policy, mv.metric, query_sent(mv.last_detail))
        if link is not None:
            links[mv.metric.id] = link
    return links
