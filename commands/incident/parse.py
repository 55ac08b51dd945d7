"""The words of `/incident …`: class, severity, summary, incident references, review months."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from commands.core import UsageError
from commands.policy import Policy

SEVERITIES = (1, 2, 3, 4)
# Slack's limit on channel names.
CHANNEL_NAME_LIMIT = 80
SUMMARY_LIMIT = 2000
_SEVERITY = re.compile(r"^(?:sev)?(\d+)$", re.IGNORECASE)
# Words that look like a severity but are not a valid one: refused, not taken as the summary.
_SEVERITY_LIKE = re.compile(r"^(?:sev-?\d+|\d)$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_INCIDENT_REF = re.compile(r"^#(\d{1,9})$")
_CHANNEL_LINK = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$")


@dataclass(frozen=True)
class DeclareArgs:
    incident_class: str
    severity: int
    summary: str
    release: str | None = None
    # How the severity was chosen, for the reply: "as you wrote" or "the class's default".
    severity_written: bool = False

    @property
    def severity_words(self) -> str:
        how = "as you wrote" if self.severity_written else "the class's default"
        return f"sev{self.severity} ({how})"


def classes_line(policy: Policy) -> str:
    if not policy.incidents:
        return "the policy defines no incident classes"
    return "classes: " + ", ".join(
        f"{name} (sev{cls.severity})" for name, cls in policy.incidents.items()
    )


def parse_severity(word: str) -> int | None:
    """`2`, `sev2`, `SEV2` → 2; anything else None."""
    match = _SEVERITY.match(word.strip())
    if match and int(match.group(1)) in SEVERITIES:
        return int(match.group(1))
    return None


def unknown_class(name: str, policy: Policy, usage: str) -> UsageError:
    return UsageError(f"unknown incident class {name[:64]!r}; {classes_line(policy)}", usage=usage)


def bad_severity(word: str, usage: str) -> UsageError:
    return UsageError(
        f"invalid severity {word[:20]!r}; severities: 1, 2, 3, 4 (or sev1 to sev4, 1 is the worst)",
        usage=usage,
    )


def check_summary(summary: str, usage: str) -> str:
    summary = " ".join(summary.split())
    if not summary:
        raise UsageError("missing SUMMARY: say what is broken", usage=usage)
    if len(summary) > SUMMARY_LIMIT:
        raise UsageError(f"the summary is longer than {SUMMARY_LIMIT} characters", usage=usage)
    return summary


def parse_declare(words: list[str], policy: Policy, usage: str) -> DeclareArgs:
    """`CLASS [SEV] SUMMARY…` (the caller handles no words at all: the form)."""
    name = words[0].lower()
    cls = policy.incidents.get(name)
    if cls is None:
        raise unknown_class(words[0], policy, usage)
    rest = words[1:]
    severity = cls.severity
    written = False
    # A severity is `sev3`, or a lone digit right after the class with a summary after it
    # (`sandbox-instability 3 sandboxes crashing` takes sev3, and the reply says so).
    if rest and (given := parse_severity(rest[0])) is not None:
        if not rest[0].isdigit() or len(rest) > 1:
            severity, rest, written = given, rest[1:], True
    elif rest and _SEVERITY_LIKE.match(rest[0]) and (not rest[0].isdigit() or len(rest) > 1):
        raise bad_severity(rest[0], usage)
    summary = check_summary(" ".join(rest), usage)
    return DeclareArgs(name, severity, summary, severity_written=written)


def slugify(text: str) -> str:
    """Lowercase ASCII words joined by dashes: `DB migration failed!` → `db-migration-failed`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "-".join(re.findall(r"[a-z0-9]+", ascii_text.lower()))


def channel_name(prefix: str, day: datetime, number: int, summary: str, *, suffix: int = 1) -> str:
    """`inc-20261127-1-db-migration-failed`, cut at a word to Slack's 80 characters; a clash
    gets `-2`, `-3` … at the end."""
    head = f"{prefix}-{day.astimezone(UTC):%Y%m%d}-{number}"
    tail = f"-{suffix}" if suffix > 1 else ""
    room = CHANNEL_NAME_LIMIT - len(head) - len(tail) - 1
    slug = slugify(summary)
    if len(slug) > room:
        cut = slug[: room + 1]
        slug = cut[: cut.rfind("-")] if "-" in cut else cut[:room]
    slug = slug.strip("-")
    return f"{head}-{slug}{tail}" if slug else f"{head}{tail}"


@dataclass(frozen=True)
class IncidentRef:
    """An explicit incident: `#12` (its id) or a link to its channel."""

    id: int | None = None
    channel: str | None = None


def take_incident_ref(words: list[str]) -> tuple[IncidentRef | None, list[str]]:
    if words:
        if match := _INCIDENT_REF.match(words[0]):
            return IncidentRef(id=int(match.group(1))), words[1:]
        if match := _CHANNEL_LINK.match(words[0]):
            return IncidentRef(channel=match.group(1)), words[1:]
    return None, words


def parse_month(word: str, usage: str) -> tuple[datetime, datetime]:
    """`2026-11` → [2026-11-01, 2026-12-01) in UTC."""
    match = _MONTH.match(word)
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        raise UsageError(f"invalid month {word[:20]!r}; use YYYY-MM, e.g. 2026-11", usage=usage)
    return month_bounds(int(match.group(1)), int(match.group(2)))


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_month(now: datetime) -> tuple[datetime, datetime]:
    now = now.astimezone(UTC)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return month_bounds(year, month)


def parse_form(
    policy: Policy,
    *,
    incident_class: str | None,
    severity: str | None,
    summary: str | None,
    release: str | None,
) -> tuple[DeclareArgs | None, dict[str, str]]:
    """The declare form's fields → the arguments, or an error per field (block id → message)."""
    errors: dict[str, str] = {}
    cls = policy.incidents.get(incident_class or "")
    if cls is None:
        errors["class"] = "Pick a class"
    sev = parse_severity(severity) if severity else (cls.severity if cls else None)
    if severity and sev is None:
        errors["severity"] = "Pick sev1 to sev4"
    text = " ".join((summary or "").split())
    if not text:
        errors["summary"] = "Say what is broken"
    elif len(text) > SUMMARY_LIMIT:
        errors["summary"] = f"At most {SUMMARY_LIMIT} characters"
    if errors or cls is None or sev is None or incident_class is None:
        return None, errors
    return DeclareArgs(incident_class, sev, text, (release or "").strip() or None), {}
