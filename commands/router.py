"""From typed text to a family's handler, and every error rendered once into a reply."""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
from commands.incident.handlers import family as incident
from commands.ready.family import family as ready
from commands.rollback import family as rollback
from commands.unit import perform
from commands.wave.family import family as wave
from storage.releases import get_release

log = logging.getLogger(__name__)

ROOT = "/ops"
# The families, in the order help lists them. Later families register here.
FAMILIES: dict[str, Family] = {family.name: family for family in [ready, wave, rollback, incident]}
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


Target = tuple[Family, Subcommand, list[str]]


@dataclass(frozen=True)
class Routed:
    """A request with what it asks for, found once: a subcommand and its words, a help reply,
    or the usage error to answer with."""

    request: Request
    target: Target | Reply | UsageError

    @property
    def answers_in_ack(self) -> bool:
        """Whether the reply can go in Slack's acknowledgement (read-only and quick, or an
        error, or help)."""
        return not isinstance(self.target, tuple) or self.target[1].answers_in_ack

    @property
    def name(self) -> str:
        """`/wave promote 1.0` → `wave promote`; help and unknown commands get bounded names,
        so a typo cannot mint a new time series in /metrics."""
        if isinstance(self.target, UsageError):
            return "unknown"
        if isinstance(self.target, Reply):
            return "help"
        family, sub, _ = self.target
        return f"{family.name} {sub.name}".strip()


def route(request: Request) -> Routed:
    """Find the family and subcommand, or the help reply asked for, or the usage error."""
    try:
        return Routed(request, _target(request))
    except UsageError as err:
        return Routed(request, err)


def _target(request: Request) -> Target | Reply:
    command = request.command.lower()
    try:
        words = split_words(request.text)
    except UsageError as err:
        aliased = ALIASES.get(command)
        err.usage = f"/{aliased} help" if aliased else f"{ROOT} help"
        raise
    if command == ROOT:
        if not words or words[0].lower() in HELP_WORDS:
            if len(words) > 2:  # `/ops help wave promote`: that command's help
                return _family(words[1]).help_for(words[2])
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


def typo_check(family: Family, sub: Subcommand, words: list[str], ctx: Context) -> None:
    """`/wave strat 1.0`: a first word read as a release by the default subcommand, close to a
    subcommand and not a release, is a typo: asked "did you mean `start`?" instead."""
    if sub.name != family.default or not words:
        return
    close = family.suggest(words[0])
    if close is None or get_release(words[0], session=ctx.session) is not None:
        return
    raise UsageError(
        f"/{family.name} has no command {words[0][:40]!r}: did you mean `{close}`?",
        usage=family.subcommands[close].usage,
    )


async def run(routed: Routed, ctx: Context) -> Reply:
    """Run one routed command as one unit of work (commands/unit.py): a typed error rolls back
    its changes, is audited when it is a refusal, and comes back as a reply."""

    async def work(ctx: Context) -> Reply:
        target = routed.target
        if isinstance(target, CommandError):
            raise target
        if isinstance(target, Reply):
            return target
        family, sub, words = target
        typo_check(family, sub, words, ctx)
        return await sub.handler(Invocation(routed.request, ctx, words, sub))

    request = routed.request
    return await perform(request.user_id, ctx, work, action=request.command.lstrip("/"))


async def dispatch(request: Request, ctx: Context) -> Reply:
    """Route and run one command."""
    return await run(route(request), ctx)
