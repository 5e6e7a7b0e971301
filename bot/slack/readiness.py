"""Readiness: whether Slack can reach this process yet and, until it can, why (``/readyz``).

``/healthz`` says the process is alive; ``/readyz`` says it can take Slack's traffic: its bot
token passed ``auth.test`` and, in Socket Mode, its WebSocket to Slack is open. Bolt's Socket
Mode client retries a refused connection forever and only logs why; the last reason it gave is
kept here, so a wrong app token shows as a 503 naming Slack's error instead of a silent wait.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from prometheus_client import Gauge
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["SLACK_CONNECTED", "ConnectionErrors", "Readiness", "verify_token"]

logger = logging.getLogger(__name__)

SLACK_CONNECTED = Gauge(
    "airlock_slack_connected",
    "1 while Slack can reach this `airlock serve`: its bot token passed auth.test and, in Socket"
    " Mode, its WebSocket to Slack is open; else 0 (always 0 in `airlock worker`).",
)

_FIRST_RETRY_SECONDS = 1.0
_LAST_RETRY_SECONDS = 60.0


class SocketState(Protocol):
    """What the Socket Mode client shows of its connection (slack_sdk's aiohttp client)."""

    closed: bool
    stale: bool
    current_session: aiohttp.ClientWebSocketResponse | None


@dataclass(kw_only=True)
class Readiness:
    """Where the connection to Slack stands, as ``/readyz`` and ``airlock_slack_connected``
    report it."""

    socket_mode: bool
    """Ready needs an open Socket Mode connection too (else the token check is enough)."""
    _token_problem: str | None = "auth.test: the bot token is not checked yet"
    _socket_problem: str = "connecting"
    _socket: SocketState | None = None
    _said: set[str] = field(default_factory=set)

    def watch(self, socket: SocketState) -> None:
        """Read the connection's state from ``socket`` from now on."""
        self._socket = socket

    def token_checked(self, problem: str | None) -> None:
        """What the last ``auth.test`` found: None when the token passed."""
        self._token_problem = problem
        if problem is not None:
            self._say(problem)

    def socket_failed(self, reason: str) -> None:
        """The Socket Mode client failed to connect (it tries again by itself)."""
        self._socket_problem = reason
        self._say(f"Socket Mode: {reason}")

    def problems(self) -> list[str]:
        """Why Slack cannot reach this process yet; empty once it can."""
        found = [] if self._token_problem is None else [self._token_problem]
        if self.socket_mode and not self._socket_open():
            found.append(f"Socket Mode: not connected to Slack ({self._socket_problem})")
        return found

    def connected(self) -> float:
        """1.0 when ready, else 0.0 (the gauge's value)."""
        return 0.0 if self.problems() else 1.0

    def _socket_open(self) -> bool:
        socket = self._socket
        if socket is None or socket.closed or socket.stale:
            return False
        session = socket.current_session
        is_open = session is not None and not session.closed
        if is_open:  # from now on, a closed connection is one that was lost
            self._socket_problem = "connection lost; reconnecting"
        return is_open

    def _say(self, problem: str) -> None:
        """Log each distinct problem once: a retry every few seconds is not news."""
        if problem not in self._said:
            self._said.add(problem)
            logger.warning("slack is not reachable yet", extra={"reason": problem})


class ConnectionErrors(logging.Filter):
    """On the Socket Mode client's logger: keeps the error behind each failed connection
    attempt in ``readiness`` (the client logs it, then tries again by itself)."""

    def __init__(self, readiness: Readiness) -> None:
        super().__init__()
        self.readiness = readiness

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the exception being handled when ``record`` is an error; drop nothing."""
        # The client logs inside its except blocks, sometimes without exc_info.
        error = sys.exc_info()[1]
        if record.levelno >= logging.ERROR and isinstance(error, Exception):
            self.readiness.socket_failed(_reason("apps.connections.open", error))
        return True


async def verify_token(client: AsyncWebClient, readiness: Readiness) -> None:
    """Call ``auth.test`` until the bot token passes, waiting longer after each failure."""
    delay = _FIRST_RETRY_SECONDS
    while True:
        try:
            await client.auth_test()
        except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as error:
            readiness.token_checked(_reason("auth.test", error))
        else:
            readiness.token_checked(None)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, _LAST_RETRY_SECONDS)


def _reason(method: str, error: Exception) -> str:
    """Why a call to Slack failed, in words fit for an unauthenticated page: Slack's error
    code or the kind of network failure, never the text of the request."""
    if isinstance(error, SlackApiError):
        return f"{method} answered {str(error.response.get('error', 'an error'))[:60]}"
    if isinstance(error, aiohttp.ClientError | OSError | TimeoutError):
        return f"{method}: cannot reach Slack ({type(error).__name__})"
    return f"{method}: {type(error).__name__}"
