"""Structured (JSON) log lines for the entry points; library modules only call ``getLogger``.

Each line is one JSON object: time, level, logger, message, and whatever ``extra=`` fields
the call passed. Token-shaped strings (Slack ``xox*-``/``xapp-`` tokens, Anthropic
``sk-ant-`` keys) are masked wherever they appear, so a careless message cannot leak one.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "configure_logging", "redact"]

_SECRET = re.compile(r"\b(xox[abposr]-|xapp-|sk-ant-)[A-Za-z0-9-_]+")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    """``text`` with every token-shaped secret replaced by its prefix and ``[redacted]``."""
    return _SECRET.sub(lambda match: f"{match.group(1)}[redacted]", text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


def configure_logging(level: str) -> None:
    """Send JSON lines at ``level`` and above to stderr (entry points call this once)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
