"""At most one log line a second, per MCP server, for what its output makes the SDK log.

A server that prints anything but JSON-RPC on stdout makes the SDK log an error with a
traceback for every such line (``mcp.client.stdio``: "Failed to parse JSONRPC message from
server"), so a server that floods its output floods our logs: about 1 KB a line, megabytes
a second. A filter on the SDK's loggers lets the first record of a kind from a server
through, holds back the same kind from the same server for a second and counts it; the
next record let through says how many were held back, and so does a last line when the
server stops. A line that is not JSON-RPC is logged without its traceback or content.

Which server a record is about comes from :data:`SERVER`, set in the task that runs the
server; the SDK's reader tasks are started from it and so inherit the value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

__all__ = ["LOG_LIMIT", "SERVER", "ServerLogLimit"]

SERVER: ContextVar[str | None] = ContextVar("airlock_mcp_server", default=None)
"""The MCP server the current task works for, if any."""

_SDK_LOGGERS = ("mcp.client.stdio", "mcp.client.session", "mcp.shared.jsonrpc_dispatcher")
_NOT_JSON_RPC = "Failed to parse JSONRPC message from server"

logger = logging.getLogger(__name__)


class ServerLogLimit(logging.Filter):
    """Lets one record of each kind (its message template) through per server per ``interval``."""

    def __init__(
        self, *, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()  # records may come from any thread
        self._passed: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record held back; a record let through is reworded (see module)."""
        server = SERVER.get()
        if server is None:
            return True
        key = (server, str(record.msg))
        now = self._clock()
        with self._lock:
            last = self._passed.get(key)
            if last is not None and now - last < self._interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._passed[key] = now
            held = self._held.pop(key, 0)
        _reword(record, server, held)
        return True

    def flush(self, server: str) -> None:
        """Log how many of ``server``'s records were held back since the last one let through."""
        with self._lock:
            keys = [key for key in self._passed if key[0] == server]
            counts = {key[1]: self._held.pop(key, 0) for key in keys}
            for key in keys:
                del self._passed[key]
        for kind, held in counts.items():
            if held:
                logger.warning("MCP server log lines held back", extra={
                    "mcp_server": server, "held_back": held, "kind": _kind(kind),
                })  # fmt: skip

    def install(self) -> None:
        """Filter the SDK's loggers (once, however often it is called)."""
        for name in _SDK_LOGGERS:
            sdk = logging.getLogger(name)
            if self not in sdk.filters:
                sdk.addFilter(self)


def _reword(record: logging.LogRecord, server: str, held: int) -> None:
    if record.msg == _NOT_JSON_RPC:
        record.msg = "MCP server wrote a line that is not JSON-RPC to stdout"
        record.args = ()
        record.exc_info = None  # a traceback a line, and the line itself, say nothing more
        record.exc_text = None
    record.mcp_server = server
    if held:
        record.msg = f"{record.msg} ({held} more like it held back in the last second)"
        record.held_back = held


def _kind(message: str) -> str:
    return "not JSON-RPC" if message == _NOT_JSON_RPC else message[:80]


LOG_LIMIT = ServerLogLimit()
"""The filter every MCP tool source installs on the SDK's loggers."""
