"""From the words of a `/wave` or `/rollback` command to the rollout it means."""

from __future__ import annotations

from dataclasses import dataclass

from commands.core import Invocation, NotFound, UsageError, option_value
from commands.text import said
from storage.models import Release, Rollout
from storage.releases import get_release
from storage.rollouts import active_rollouts, list_rollouts, rollout_of


@dataclass(frozen=True)
class Target:
    rollout: Rollout
    release: Release
    # The words after the release (a reason, options).
    rest: list[str]


def named_release(inv: Invocation) -> Release | None:
    """The first word, when a release of that name exists."""
    if not inv.words:
        return None
    return get_release(inv.words[0], session=inv.ctx.session)


def pick_rollout(inv: Invocation, *, finished_ok: bool = False) -> Target:
    """The rollout of the named release; else the only active one; asks when several are."""
    session = inv.ctx.session
    release = named_release(inv)
    if release is not None:
        rollout = rollout_of(release, session=session)
        if rollout is None:
            raise NotFound(
                f"{release.version} has no rollout; start it with `/wave start {release.version}`",
                usage=inv.sub.usage,
            )
        return Target(rollout, release, list(inv.words[1:]))
    active = active_rollouts(session=session)
    if len(active) > 1:
        names = ", ".join(f"{rel.version} ({said(r.state)})" for r, rel in active)
        raise UsageError(
            f"several rollouts are active: {names}. Name the release.", usage=inv.sub.usage
        )
    if active:
        rollout, release = active[0]
        return Target(rollout, release, list(inv.words))
    if finished_ok:
        newest = list_rollouts(session=session, limit=1)
        if newest:
            return Target(newest[0][0], newest[0][1], list(inv.words))
    raise NotFound(
        "no rollout is active. Start one with `/wave start RELEASE`", usage=inv.sub.usage
    )


def force_option(inv: Invocation, words: list[str]) -> tuple[list[str], str | None]:
    """`--force REASON` at the end: (the words before, the reason or None)."""
    before, reason, found = option_value(words, "--force")
    if found and not reason:
        raise inv.usage_error("--force needs a REASON (it goes in the audit trail)")
    return before, reason if found else None


def no_extra_words(inv: Invocation, words: list[str]) -> None:
    if words:
        if words[0].startswith("--"):
            raise inv.usage_error(f"unknown option {words[0]!r}")
        raise inv.usage_error(f"no release {words[0]!r} is registered")
