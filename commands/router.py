"""From typed text to a family's handler, and every error rendered once into a reply."""

from __future__ import annotations

import logging

from commands import incident, ready, rollback, wave
from commands.core import (
    CommandError,
    Context,
    Family,
    Invocation,
    Reply,
    Request,
    Subcommand,
    UsageError,
    split_words,
)
from storage.audit import Outcome, record_event

log = logging.getLogger(__name__)

ROOT = "/ops"
# The families, in the order help lists them. Later families register here.
FAMILIES: dict[str, Family] = {
    family.name: family for family in [ready.family, wave.family, rollback.family, incident.family]
}
# `/ready …` means `/ops ready …`, and so on.
ALIASES = {"/ready": "ready", "/wave": "wave", "/rollback": "rollback", "/incident": "incident"}
HELP_WORDS = {"help", "-h", "--help", "?"}


def root_help() -> Reply:
    lines = ["*wavegate* — readiness, rollout waves and incidents from Slack.", ""]
    for family in FAMILIES.values():
        lines.append(f"`/{family.name}` (or `{ROOT} {family.name}`) — {family.summary}")
    lines += ["", f"`{ROOT} help FAMILY` or `/FAMILY help` for its commands."]
    return Reply("\n".join(lines))


def _family(name: str) -> Family:
    family = FAMILIES.get(name.lower())
    if family is None:
        known = ", ".join(FAMILIES)
        raise UsageError(f"unknown command {name!r}; commands: {known}", usage=f"{ROOT} help")
    return family


def route(request: Request) -> tuple[Family, Subcommand, list[str]] | Reply:
    """Find the family and subcommand, or the help reply asked for. Raises UsageError."""
    words = split_words(request.text)
    command = request.command.lower()
    if command == ROOT:
        if not words or words[0].lower() in HELP_WORDS:
            if len(words) > 1:
                return _family(words[1]).help()
            return root_help()
        family, words = _family(words[0]), words[1:]
    elif command in ALIASES:
        family = _family(ALIASES[command])
    else:
        raise UsageError(f"unknown slash command {request.command!r}", usage=f"{ROOT} help")
    if words and words[0].lower() in HELP_WORDS:
        return family.help_for(words[1]) if len(words) > 1 else family.help()
    sub, rest = family.resolve(words)
    return family, sub, rest


def answers_in_ack(request: Request) -> bool:
    """Whether the reply can go in Slack's acknowledgement (read-only and quick, or an error)."""
    try:
        target = route(request)
    except CommandError:
        return True
    return isinstance(target, Reply) or target[1].answers_in_ack


def render_error(err: CommandError) -> Reply:
    text = f"{err.title}: {err.message}"
    if err.usage:
        text += f"\nUsage: `{err.usage}`"
    return Reply(text, error=True)


async def dispatch(request: Request, ctx: Context) -> Reply:
    """Run one command in one transaction. A typed error rolls back its changes, is written to
    the audit trail when it is a refusal, and comes back as a reply."""
    try:
        target = route(request)
        if isinstance(target, Reply):
            return target
        _, sub, words = target
        reply = await sub.handler(Invocation(request, ctx, words, sub))
        ctx.session.commit()
        return reply
    except CommandError as err:
        ctx.session.rollback()
        if err.audited:
            record_event(
                actor=request.user_id,
                action=err.action or request.command.lstrip("/"),
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
