"""What a re-sent claim that the deploy system did not confirm keeps in its note: how many sends
failed, the last error and when it is sent again (commands/wave/rules/recovery.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commands.text import escape

RESEND = "resend"
# The first re-send after a failed one waits this long, each further one twice as long, capped.
FIRST_WAIT = timedelta(seconds=10)
LONGEST_WAIT = timedelta(minutes=5)


@dataclass(frozen=True)
class Resend:
    failures: int
    error: str
    next_at: datetime

    @classmethod
    def after(cls, previous: Resend | None, *, error: str, now: datetime) -> Resend:
        failures = (previous.failures if previous else 0) + 1
        wait = min(LONGEST_WAIT, FIRST_WAIT * 2 ** (failures - 1))
        return cls(failures, error[:300], now + wait)

    def as_json(self) -> dict[str, Any]:
        return {"failures": self.failures, "error": self.error, "next_at": self.next_at.isoformat()}


def resend_of(pending_note: str | None) -> Resend | None:
    """The re-send record of a pending claim's note; None when no re-send failed."""
    data = json.loads(pending_note).get(RESEND) if pending_note else None
    if not isinstance(data, dict):
        return None
    return Resend(
        int(data["failures"]), str(data["error"]), datetime.fromisoformat(data["next_at"])
    )


def resend_words(pending_note: str | None) -> str | None:
    """`; the deploy system did not confirm it (2 sends failed: …); sent again with the same key
    at 10:04 UTC` for /wave status."""
    resend = resend_of(pending_note)
    if resend is None:
        return None
    sends = "send" if resend.failures == 1 else "sends"
    return (
        f"; the deploy system did not confirm it ({resend.failures} {sends} failed: "
        f"{escape(resend.error)}), so it stays pending and is sent again with the same key at "
        f"{resend.next_at:%H:%M:%S} UTC"
    )
