"""Mentions as Slack sends them with `should_escape: true`: users, user groups and channels."""

from __future__ import annotations

import pytest

from commands.text import parse_channel, parse_group, parse_member, parse_mention


@pytest.mark.parametrize(
    ("word", "user"),
    [
        ("<@U0ANA|ana>", "U0ANA"),
        ("<@U0ANA>", "U0ANA"),
        ("<@W0ENT|ent.user>", "W0ENT"),
        ("U0ANA", "U0ANA"),
        ("@ana", None),
        ("ana", None),
        ("<!subteam^S0SRE|@sre>", None),
        ("<#C0WORK|work>", None),
        ("<@U0ANA|ana", None),
    ],
)
def test_users_are_read_from_every_form_slack_sends(word: str, user: str | None) -> None:
    assert parse_mention(word) == user


@pytest.mark.parametrize(
    ("word", "group"),
    [
        ("<!subteam^S0SRE|@sre>", "S0SRE"),
        ("<!subteam^S0SRE>", "S0SRE"),
        ("S0SRE", "S0SRE"),
        ("@sre", None),
        ("<@U0ANA>", None),
    ],
)
def test_user_groups_are_read_from_every_form_slack_sends(word: str, group: str | None) -> None:
    assert parse_group(word) == group


def test_a_member_is_a_user_or_a_group() -> None:
    assert parse_member("<@U0ANA|ana>") == "U0ANA"
    assert parse_member("<!subteam^S0SRE|@sre>") == "S0SRE"
    assert parse_member("<#C0WORK|work>") is None


@pytest.mark.parametrize(
    ("word", "channel"),
    [
        ("<#C0WORK|work>", "C0WORK"),
        ("<#C0WORK>", "C0WORK"),
        ("<#G0PRIV|secret>", "G0PRIV"),
        ("C0WORK", "C0WORK"),
        ("#work", None),
        ("<@U0ANA>", None),
    ],
)
def test_channels_are_read_from_every_form_slack_sends(word: str, channel: str | None) -> None:
    assert parse_channel(word) == channel
