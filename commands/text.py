"""Small text helpers shared by the families: ages, Slack links, mentions and mrkdwn escaping."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_SLACK_LINK = re.compile(r"^<([^|>]+)(?:\|[^>]*)?>$")
# With `should_escape: true` Slack sends a mentioned user as `<@U…|name>` (or `<@U…>`), a user
# group as `<!subteam^S…|@name>` and a channel as `<#C…|name>`.
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
# A person or channel mention, escaped: the only markup an error message may carry.
_ESCAPED_MENTION = re.compile(r"&lt;(@[UW][A-Z0-9]+|#[CG][A-Z0-9]+(?:\|[a-z0-9_-]{1,80})?)&gt;")
_GROUP = re.compile(r"^<!subteam\^(S[A-Z0-9]+)(?:\|[^>]*)?>$")
_CHANNEL = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")


def ago(then: datetime, now: datetime) -> str:
    return span(now - then) + " ago" if now >= then else "in " + span(then - now)


def span(delta: timedelta) -> str:
    """A short human duration: 45s, 12m, 3h 5m, 2d 4h."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        return f"{minutes}m"
    if hours < 24:
        rest = minutes - hours * 60
        return f"{hours}h {rest}m" if rest else f"{hours}h"
    rest = hours - days * 24
    return f"{days}d {rest}h" if rest else f"{days}d"


def escape(text: object) -> str:
    """Text from outside (a person, CI, Alertmanager, a metric provider, the deploy system) made
    inert for Slack mrkdwn: `<!here>`, `<!subteam^…>`, `<@U…>` and `<https://…|label>` show as
    typed instead of pinging or linking (DESIGN §11). Applied once, where a view puts the value
    into text; our own mentions and links are added around escaped values, never escaped."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_message(text: str) -> str:
    """An error message (our words around echoed input) made safe: everything escaped, then
    the person and channel mentions we write put back. A typed `<@U…>` comes back too, which
    only names someone to the one reading the ephemeral error; `<!here>`, groups and links
    stay inert."""
    return _ESCAPED_MENTION.sub(r"<\1>", escape(text))


def unwrap_link(word: str) -> str:
    """Slack sends a pasted link as `<https://x|label>`; keep the URL."""
    match = _SLACK_LINK.match(word)
    return match.group(1) if match else word


def mention(user_id: str | None) -> str:
    if not user_id:
        return "nobody"
    if user_id.startswith(("U", "W")):
        return f"<@{user_id}>"
    if user_id.startswith("S"):
        return f"<!subteam^{user_id}>"
    return escape(user_id)


def _parse(word: str, escaped: re.Pattern[str], bare: re.Pattern[str]) -> str | None:
    word = word.strip()
    match = escaped.match(word)
    if match:
        return match.group(1)
    return word if bare.match(word) else None


def parse_mention(word: str) -> str | None:
    """A user: `<@U123|name>`, `<@U123>` or a bare `U123` → `U123`; anything else None."""
    return _parse(word, _MENTION, _USER_ID)


def parse_group(word: str) -> str | None:
    """A user group: `<!subteam^S123|@team>`, `<!subteam^S123>` or a bare `S123` → `S123`."""
    return _parse(word, _GROUP, _GROUP_ID)


def parse_member(word: str) -> str | None:
    """Someone a role may name: a user or a user group, as `parse_mention` / `parse_group`."""
    return parse_mention(word) or parse_group(word)


def parse_channel(word: str) -> str | None:
    """A channel: `<#C123|name>`, `<#C123>` or a bare `C123` (`G…` for old private ones)."""
    return _parse(word, _CHANNEL, _CHANNEL_ID)


def said(state: object) -> str:
    """A stored state in words: `rolled_back` → `rolled back`, `rolling_out` → `rolling out`."""
    return str(state).replace("_", " ")


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 open incident`, `2 open incidents` (`many` for irregular words)."""
    if count == 1:
        return f"1 {word}"
    return f"{count} {many or word + 's'}"


def span_between(start: datetime, end: datetime) -> str:
    """`10:00 - 14:30 UTC` within one day, `Nov 27 10:00 - Nov 29 14:30 UTC` across days
    (the dash is an en dash)."""
    dash = "\u2013"
    if start.date() == end.date():
        return f"{start:%H:%M} {dash} {end:%H:%M} UTC"
    return f"{start:%b} {start.day} {start:%H:%M} {dash} {end:%b} {end.day} {end:%H:%M} UTC"
