"""Readable in one voice: typos, reserved words, help at every depth, plurals, dates."""

from __future__ import annotations

from datetime import UTC, datetime

from commands.core import Context
from commands.incident.parse import parse_declare
from commands.policy_file import builtin_policy
from commands.ready.checklist import RESERVED
from commands.router import FAMILIES
from commands.text import plural, span_between
from storage.releases import get_release
from tests.conftest import run


async def test_a_subcommand_typo_asks_did_you_mean(ctx: Context) -> None:
    reply = await run(ctx, "/wave strat 1.0")
    assert reply.error
    assert "/wave has no command 'strat': did you mean `start`?" in reply.text
    assert reply.text.count("Usage:") == 1
    assert "/wave start RELEASE" in reply.text


async def test_a_release_named_like_a_typo_is_still_a_release(ctx: Context) -> None:
    await run(ctx, "/ready new strat")
    reply = await run(ctx, "/wave strat")
    assert "did you mean" not in reply.text


async def test_command_words_cannot_name_a_release(ctx: Context) -> None:
    reply = await run(ctx, "/ready new help")
    assert reply.error
    assert "'help' is a command word, so it cannot name a release" in reply.text
    assert get_release("help", session=ctx.session) is None
    every = {name for family in FAMILIES.values() for name in family.subcommands if name}
    assert every <= RESERVED


async def test_help_at_every_depth(ctx: Context) -> None:
    deep = await run(ctx, "/ops help wave promote")
    assert deep.text.startswith("`/wave promote [RELEASE] [--force REASON]`")
    assert (await run(ctx, "/wave help promote")).text == deep.text
    assert (await run(ctx, "/ops help wave")).text.startswith("*/wave*")


def test_the_severity_rule_and_the_words_for_it() -> None:
    policy = builtin_policy()
    usage = "/incident declare [CLASS] [SEV] SUMMARY"
    written = parse_declare(["sandbox-instability", "sev3", "crashing"], policy, usage)
    assert (written.severity, written.summary) == (3, "crashing")
    assert written.severity_words == "sev3 (as you wrote)"
    digit = parse_declare(["sandbox-instability", "3", "sandboxes", "crashing"], policy, usage)
    assert digit.severity_words == "sev3 (as you wrote)"
    assert digit.summary == "sandboxes crashing"
    default = parse_declare(["sandbox-instability", "sandboxes", "crashing"], policy, usage)
    assert default.severity_words.endswith("(the class's default)")


def test_plurals_and_dated_spans() -> None:
    assert plural(1, "open incident") == "1 open incident"
    assert plural(2, "open incident") == "2 open incidents"
    morning = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert span_between(morning, morning.replace(hour=14, minute=30)) == "10:00 \u2013 14:30 UTC"
    later = datetime(2026, 11, 29, 14, 30, tzinfo=UTC)
    assert span_between(morning, later) == "Nov 27 10:00 \u2013 Nov 29 14:30 UTC"
