"""The shapes every command family shares: request, reply, context, typed errors, families."""

from __future__ import annotations

import difflib
import inspect
import re
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlmodel import Session

from commands.ports import Ports

if TYPE_CHECKING:
    from commands.policy import Policy

Block = dict[str, Any]


class Clock(Protocol):
    """Where commands get the time; tests inject a settable one."""

    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Request:
    """One command as typed: `/ready check 2026.11.27-1 lint` → command `/ready`, text the rest."""

    command: str
    text: str
    user_id: str
    user_groups: frozenset[str] = frozenset()
    # Groups whose members could not be read (Slack unreachable): membership through them is
    # unknown, so a permission resting on them is refused, saying why.
    unread_groups: frozenset[str] = frozenset()
    channel_id: str | None = None
    # Slack's trigger of this request: a form (modal) can be opened with it for 3 seconds.
    trigger_id: str | None = None


@dataclass
class Reply:
    """What a command answers. `text` is the fallback Slack shows and what the console prints."""

    text: str
    blocks: list[Block] | None = None
    in_channel: bool = False
    # A failed command (usage, not found, refused); its reply is always ephemeral.
    error: bool = False
    # For /metrics: `ok`, or the kind of error (CommandError.outcome).
    outcome: str = "ok"


@dataclass
class Context:
    """What a command may use besides its arguments: the database session of its unit of work,
    the policy, the clock and the ports (commands/ports.py)."""

    session: Session
    policy: Policy
    clock: Clock = system_clock
    ports: Ports = field(default_factory=Ports)

    def now(self) -> datetime:
        return self.clock()


class CommandError(Exception):
    """An error the user should read; rendered once, by the dispatcher."""

    title = "Error"
    outcome = "error"
    audited = False

    def __init__(
        self,
        message: str,
        *,
        usage: str | None = None,
        action: str | None = None,
        subject: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage
        # For the audit trail of a refused attempt.
        self.action = action
        self.subject = subject


class UsageError(CommandError):
    """The words of the command are wrong."""

    title = "Usage"
    outcome = "usage_error"


class NotFound(CommandError):
    """The command names something that does not exist."""

    title = "Not found"
    outcome = "not_found"


class Forbidden(CommandError):
    """The actor lacks a permission; audited as a refused attempt."""

    title = "Not allowed"
    outcome = "forbidden"
    audited = True


class GateClosed(CommandError):
    """A rule refuses the change (checklist, window, verdict, incident); audited."""

    title = "Refused"
    outcome = "refused"
    audited = True


class Conflict(CommandError):
    """The change clashes with the current state (already done, stale button); audited."""

    title = "Conflict"
    outcome = "conflict"
    audited = True


_SHELL_MARKS = frozenset("'\"\\")
_WORDS = re.compile(r"[^ \t\r\n]+")  # shlex's whitespace


def split_words(text: str) -> list[str]:
    """Split command text like a shell, so `"two words"` stays one argument.

    Slack turns typed quotes into curly ones; they are straightened first. Unbalanced quotes
    are a usage error rather than a crash.
    """
    straight = (
        text.replace("\u201c", '"')
        .replace("\u201d", '"')
        .replace("\u2018", "'")
        .replace("\u2019", "'")
        .replace("\u00a0", " ")
    )
    if _SHELL_MARKS.isdisjoint(straight):
        return _WORDS.findall(straight)  # what shlex gives for text with no quote or escape
    try:
        lexer = shlex.shlex(straight, posix=True, punctuation_chars=False)
        lexer.whitespace_split = True
        lexer.commenters = ""
        return list(lexer)
    except ValueError as exc:
        raise UsageError(f"could not read the arguments: {exc}") from exc


Handler = Callable[["Invocation"], Awaitable[Reply]]


@dataclass(frozen=True)
class Invocation:
    """A request bound to its family and subcommand, with the words after the subcommand."""

    request: Request
    ctx: Context
    words: list[str]
    sub: Subcommand

    @property
    def actor(self) -> str:
        return self.request.user_id

    def usage_error(self, message: str) -> UsageError:
        return UsageError(message, usage=self.sub.usage)


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str
    handler: Handler
    # Read-only and quick: answered inside Slack's acknowledgement.
    answers_in_ack: bool = True

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.handler) or "").split("\n", 1)[0]

    @property
    def help_text(self) -> str:
        return inspect.getdoc(self.handler) or ""


class Family:
    """A command family (`ready`, `wave`, …): subcommands registered with their usage line.

    The docstring of each handler is its help text; the first line is the summary.
    """

    def __init__(self, name: str, summary: str, *, default: str = "") -> None:
        self.name = name
        self.summary = summary
        self.default = default
        self.subcommands: dict[str, Subcommand] = {}

    def command(
        self, name: str, usage: str, *, answers_in_ack: bool = True
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.subcommands[name] = Subcommand(name, usage, handler, answers_in_ack)
            return handler

        return register

    def resolve(self, words: Sequence[str]) -> tuple[Subcommand, list[str]]:
        """Pick the subcommand named by the first word, else the family's default one (the
        router then checks the word is not a typo of a subcommand: `suggest`)."""
        if words and words[0].lower() in self.subcommands:
            return self.subcommands[words[0].lower()], list(words[1:])
        return self.subcommands[self.default], list(words)

    def suggest(self, word: str) -> str | None:
        """The subcommand a typo (`strat`) is close to: `start`; None when none is close."""
        names = [name for name in self.subcommands if name]
        close = difflib.get_close_matches(word.lower(), names, n=1, cutoff=0.75)
        return close[0] if close else None

    @property
    def reserved(self) -> set[str]:
        """Words that are commands, so they cannot name a release."""
        return {name for name in self.subcommands if name} | {"help"}

    def help(self) -> Reply:
        lines = [f"*/{self.name}* — {self.summary}", ""]
        for sub in self.subcommands.values():
            lines.append(f"`{sub.usage}`  {sub.summary}")
        lines.append("")
        lines.append(f"`/{self.name} help COMMAND` for more on one command.")
        return Reply("\n".join(lines))

    def help_for(self, name: str) -> Reply:
        sub = self.subcommands.get(name.lower())
        if sub is None:
            raise UsageError(
                f"/{self.name} has no command {name!r}. Commands: "
                + ", ".join(s.name or "(status)" for s in self.subcommands.values()),
                usage=f"/{self.name} help [COMMAND]",
            )
        return Reply(f"`{sub.usage}`\n{sub.help_text}")


def option_value(words: list[str], flag: str) -> tuple[list[str], str | None, bool]:
    """Take `--flag REST...` out of the words: (words before, the rest joined, found)."""
    for index, word in enumerate(words):
        if word == flag:
            return words[:index], " ".join(words[index + 1 :]).strip(), True
    return words, None, False
