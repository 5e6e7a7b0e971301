"""What a bad request costs in the log: one short line, and under a flood not even that.

Whoever can reach ``/slack/events`` can send garbage as fast as they like. Each request
airlock refuses is counted (``airlock_slack_requests_rejected``, by reason) and logged on
one line without a stack trace; past ``burst`` lines in ``window_seconds`` the lines stop,
and the next one logged says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

__all__ = ["REJECTED", "OneLineErrors", "SampledLog", "rejections"]

REJECTED = Counter(
    "airlock_slack_requests_rejected",
    "Requests to /slack/events refused or dropped, by reason (bad signature, malformed, ...).",
    ["reason"],
)


@dataclass(kw_only=True)
class SampledLog:
    """Logs at most ``burst`` lines per ``window_seconds``; counts the rest."""

    logger: logging.Logger
    burst: int = 20
    """Lines logged in one window at most."""
    window_seconds: float = 10.0
    """Length of a window."""
    clock: Callable[[], float] = time.monotonic
    _started: float = field(default=float("-inf"))
    _logged: int = 0
    _left_out: int = 0

    def admit(self) -> int | None:
        """None if this window's lines are used up (the line is counted as left out); else
        how many lines were left out since the last one admitted."""
        now = self.clock()
        if now - self._started >= self.window_seconds:
            self._started, self._logged = now, 0
        if self._logged >= self.burst:
            self._left_out += 1
            return None
        self._logged += 1
        left_out, self._left_out = self._left_out, 0
        return left_out

    def log(self, level: int, message: str, **fields: Any) -> None:
        """Log ``message`` with ``fields`` unless this window's lines are used up."""
        left_out = self.admit()
        if left_out is None:
            return
        if left_out:
            fields["left_out"] = left_out  # lines not logged since the last one
        self.logger.log(level, message, extra=fields)


_UNSIGNED = SampledLog(logger=logging.getLogger(__name__))
_SIGNED = SampledLog(logger=logging.getLogger(__name__))


def rejections(*, signed: bool = False) -> SampledLog:
    """The process's log of refused requests: one for what anyone can send (unsigned, not
    even HTTP), one for what came signed, so a flood of the first hides nothing of the
    second."""
    return _SIGNED if signed else _UNSIGNED


class OneLineErrors(logging.Filter):
    """Turns a library's ``logger.exception`` into one line: the error's type stays, the
    stack trace goes, and past a burst such lines are dropped (counted, as above)."""

    def __init__(self, sampled: SampledLog | None = None) -> None:
        super().__init__()
        self._sampled = sampled or SampledLog(logger=logging.getLogger(__name__))

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep ``record`` on one line; False drops it (a flood of them)."""
        if not record.exc_info:
            return True
        error = record.exc_info[1]
        record.exc_info, record.exc_text = None, None
        record.error = type(error).__name__ if error is not None else "unknown"
        record.detail = str(error)[:200]
        left_out = self._sampled.admit()
        if left_out:
            record.left_out = left_out
        return left_out is not None
