"""One unit of work: a command, a button press, a form or an event, in one transaction.

A typed error rolls back what the work changed, a refusal is written to the audit trail, and the
error comes back as the reply the person reads. Anything else is a bug and propagates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from commands.core import CommandError, Context, Reply
from commands.text import escape_message
from storage.audit import Outcome, record_event

T = TypeVar("T")


def render_error(err: CommandError) -> Reply:
    # The message often echoes what was typed (an unknown release, a reason).
    title = err.title
    if err.usage and title == "Usage":
        title = "Not understood"  # one "Usage:" line: the usage itself
    text = f"{title}: {escape_message(err.message)}"
    if err.usage:
        text += f"\nUsage: `{err.usage}`"
    return Reply(text, error=True, outcome=err.outcome)


async def perform(
    actor: str, ctx: Context, work: Callable[[Context], Awaitable[T]], *, action: str
) -> T | Reply:
    """Run `work(ctx)` and commit, or roll back and answer with the error. `action` names a
    refusal in the audit trail when the error does not name its own."""
    try:
        result = await work(ctx)
        ctx.session.commit()
        return result
    except CommandError as err:
        ctx.session.rollback()
        if err.audited:
            record_event(
                actor=actor,
                action=err.action or action,
                subject=err.subject or "-",
                outcome=Outcome.refused,
                reason=err.message,
                at=ctx.now(),
                session=ctx.session,
            )
            ctx.session.commit()
        return render_error(err)
    except BaseException:
        ctx.session.rollback()
        raise
