"""Watching the end of a server's output: the sign that its process died.

The SDK's session reads the transport's stream until it ends and says nothing when it
does; :class:`EndWatch` wraps that stream so the source hears of the end at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, Self, TypeAlias

import anyio
from mcp.shared.message import SessionMessage

Incoming: TypeAlias = SessionMessage | Exception
"""What the transport's read stream yields: a message, or an error it could not parse."""


class Receiver(Protocol):
    """The part of the transport's read stream the session uses."""

    async def receive(self) -> Incoming: ...
    async def aclose(self) -> None: ...


class EndWatch:
    """The transport's read stream, reporting its end: the server closed stdout (it died)."""

    def __init__(self, inner: Receiver, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    async def receive(self) -> Incoming:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Incoming:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
