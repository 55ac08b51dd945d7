"""`split_words` reads text with no quote or backslash without shlex, and gives what shlex gives."""

from __future__ import annotations

import random
import shlex

import pytest

from commands.core import UsageError, split_words

ALPHABET = list("ab c\t\r\n\x0b\x0c\u2003\u00a0é#;|&<>*?$()`~!-=")


def shell(text: str) -> list[str]:
    lexer = shlex.shlex(text.replace("\u00a0", " "), posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def test_plain_text_splits_as_shlex_splits_it() -> None:
    rng = random.Random(13)
    for _ in range(5000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 14)))
        assert split_words(text) == shell(text), repr(text)


def test_quotes_still_group_words_and_unbalanced_ones_are_a_usage_error() -> None:
    assert split_words('start 1.0 --force "two words"') == ["start", "1.0", "--force", "two words"]
    assert split_words("pause 1.0 \u201cslow db\u201d") == ["pause", "1.0", "slow db"]
    with pytest.raises(UsageError):
        split_words('pause "open')
