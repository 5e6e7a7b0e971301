"""Structured (JSON) log lines for the entry points; library modules only call ``getLogger``.

Each line is one JSON object: time, level, logger, message, and whatever ``extra=`` fields
the call passed. Secrets are masked wherever they appear, at every level, so a careless
message (or a library's debug line with a whole request in it) cannot leak one. The
detector lives in :mod:`agent_core.secrets`; :func:`redact`, :func:`redact_value`,
:func:`contains_secret` and :func:`register_secrets` are re-exported here for callers.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from agent_core.secrets import contains_secret, redact, redact_value, register_secrets

__all__ = [
    "JsonFormatter",
    "configure_logging",
    "contains_secret",
    "redact",
    "redact_value",
    "register_secrets",
]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


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
        # Masked before encoding: in JSON a newline becomes "\n", and "\nxoxb-..." would no
        # longer start a token at a word boundary.
        masked = redact_value(json.loads(json.dumps(line, default=str)))
        return json.dumps(masked, ensure_ascii=False)


def configure_logging(level: str) -> None:
    """Send JSON lines at ``level`` and above to stderr (entry points call this once)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
