"""Every configured MCP server, started and stopped together."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Self, TextIO

from agent_core.tools.mcp.config import McpConfig
from agent_core.tools.mcp.source import McpFailure, McpServerState, McpToolSource
from agent_core.tools.registry import ToolRegistry


class McpTools:
    """Every configured MCP server, started together; use as ``async with``.

    A server that fails to start is logged and listed in :attr:`failures`; the others run.
    A server that dies later has its tools withdrawn from the registry and is listed too.
    Leaving the block stops every server and withdraws all their tools.
    """

    def __init__(
        self, *, config: McpConfig, registry: ToolRegistry, errlog: TextIO | None = None
    ) -> None:
        """``errlog`` receives the servers' stderr (ours by default)."""
        errlog = errlog or sys.stderr
        self.sources: dict[str, McpToolSource] = {
            name: McpToolSource(name=name, config=server, registry=registry, errlog=errlog)
            for name, server in config.servers.items()
        }
        """One source per configured server, by name."""

    @property
    def failures(self) -> list[McpFailure]:
        """Servers that failed to start or died, with the reason."""
        return [s.failure for s in self.sources.values() if s.failure is not None]

    @property
    def running(self) -> list[str]:
        """Names of the servers whose tools are registered now."""
        return [n for n, s in self.sources.items() if s.state is McpServerState.RUNNING]

    async def start(self) -> None:
        """Start every server and wait until each runs or failed (bounded by its start timeout)."""
        for source in self.sources.values():
            source.start()
        try:
            for source in self.sources.values():
                await source.wait_started()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop every server; safe to call more than once."""
        for source in self.sources.values():
            source.stop()
        for source in self.sources.values():
            await source.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
