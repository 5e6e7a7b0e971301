"""A spinner and a few words on stderr while a slow step works: starting up, loading the
embedding model, planning, a step, verifying a trail.

Only on a terminal: piped or redirected (a script, a log, the tests) stderr stays as quiet as
before, with no control codes in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.status import Status

__all__ = ["StatusLine"]


@dataclass(kw_only=True)
class StatusLine:
    """One status line; hide it before printing anything else on the same terminal, so the
    spinner never tears the printed lines."""

    console: Console = field(default_factory=lambda: Console(stderr=True))
    _status: Status | None = None

    @property
    def shown(self) -> bool:
        """Whether it is on screen now."""
        return self._status is not None

    def show(self, text: str) -> None:
        """Show ``text`` beside the spinner (replacing what it said); nothing off a terminal."""
        if not self.console.is_terminal:
            return
        if self._status is None:
            self._status = self.console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def hide(self) -> None:
        """Take the line off the screen, if it is there."""
        if self._status is not None:
            self._status.stop()
            self._status = None

    @contextmanager
    def during(self, text: str) -> Iterator[None]:
        """Show ``text`` while the block runs."""
        self.show(text)
        try:
            yield
        finally:
            self.hide()
