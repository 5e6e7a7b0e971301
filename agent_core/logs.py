"""Structured (JSON) log lines for the entry points; library modules only call ``getLogger``.

Each line is one JSON object: time, level, logger, message, and whatever ``extra=`` fields
the call passed. Secrets (see :func:`redact`) are masked wherever they appear, so a careless
message cannot leak one; the audit trail, Slack messages and trace attributes use the same
:func:`redact`.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "configure_logging", "redact", "redact_value", "register_secrets"]

# No word boundary before the prefixes: in escaped text ("...\\nxoxb-...", a repr, a JSON
# string) the character before a token is often a letter.
_TOKEN = re.compile(r"(xox[abposr]-|xapp-|sk-ant-|gh[pousr]_|github_pat_)[A-Za-z0-9-_]+")
_AWS_KEY_ID = re.compile(r"(AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])")
# Credentials given by name: aws_secret_access_key=..., "password": "...", client_secret: ...
_NAMED = re.compile(
    r"(?i)((?:aws_secret_access_key|secret_access_key|password|passwd|client_secret|api_?key"
    r"|access_token|refresh_token|private_key)[\"']?\s*[=:]\s*[\"']?)[^\s\"',;]{8,}"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
# To the END line if there is one, else to the end of the text: a cut key is still a key.
_PEM = re.compile(
    r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL
)
_configured: set[str] = set()
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def register_secrets(*values: str | None) -> None:
    """Also mask these exact values (the configured tokens and keys) wherever they appear."""
    # Short values would mask ordinary words; real secrets are long.
    _configured.update(v for v in values if v is not None and len(v) >= 8)


def redact(text: str) -> str:
    """``text`` with every secret masked: Slack, Anthropic and GitHub tokens (their prefix
    kept), AWS access key ids, bearer tokens, PEM private keys, credentials given by name
    (``password=…``, ``aws_secret_access_key: …``), and registered secrets."""
    for secret in _configured:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    text = _TOKEN.sub(lambda match: f"{match.group(1)}[redacted]", text)
    text = _AWS_KEY_ID.sub(lambda match: f"{match.group(1)}[redacted]", text)
    text = _NAMED.sub(lambda match: f"{match.group(1)}[redacted]", text)
    text = _BEARER.sub(lambda match: f"{match.group(1)}[redacted]", text)
    return _PEM.sub(lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY-----[redacted]", text)


def redact_value(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with :func:`redact` applied to every string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


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
