"""Output above the console's prompt: a log line or a post printed while someone types does not
land in the middle of their line; the prompt and what they typed so far are drawn again below."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TextIO

PROMPT = "wavegate> "
# Back to the start of the line and clear it (ANSI), so the prompt can be drawn again below.
CLEAR_LINE = "\r\x1b[K"


class Prompt:
    """Knows whether the prompt is showing; writes text above it when it is."""

    def __init__(
        self, out: TextIO, *, typed: Callable[[], str] = lambda: "", redraw: bool | None = None
    ) -> None:
        self.out = out
        # What has been typed on the prompt line so far (readline's buffer where there is one).
        self.typed = typed
        # Redraw only on a terminal: escape codes in a pipe or a file would be noise.
        self.redraw = out.isatty() if redraw is None else redraw
        self.showing = False
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        """`text` (one or more whole lines) above the prompt."""
        with self._lock:
            if self.showing and self.redraw:
                self.out.write(CLEAR_LINE + text + PROMPT + self.typed())
            else:
                self.out.write(text)
            self.out.flush()


class PromptStream:
    """A stream for logging handlers: whole lines go above the prompt."""

    def __init__(self, prompt: Prompt) -> None:
        self.prompt = prompt
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        if "\n" in self._partial:
            lines, _, self._partial = self._partial.rpartition("\n")
            self.prompt.write(lines + "\n")
        return len(text)

    def flush(self) -> None:
        pass


def route_logs_above(prompt: Prompt) -> list[tuple[logging.StreamHandler[TextIO], TextIO]]:
    """Point the root logger's stream handlers at the prompt; returns what to restore."""
    swapped = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            old = handler.setStream(PromptStream(prompt))
            if old is not None:
                swapped.append((handler, old))
    return swapped


def restore_logs(swapped: list[tuple[logging.StreamHandler[TextIO], TextIO]]) -> None:
    for handler, stream in swapped:
        handler.setStream(stream)
