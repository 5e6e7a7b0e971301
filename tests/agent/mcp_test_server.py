"""An MCP stdio server for the MCP adapter tests: ``python mcp_test_server.py``."""

from __future__ import annotations

import asyncio
import os

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("airlock-test", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Return ``text`` unchanged."""
    return text


@server.tool()
def fail() -> str:
    """Always report a tool error."""
    raise ToolError("deliberate failure")


@server.tool()
def pid() -> int:
    """The id of this server's process."""
    return os.getpid()


@server.tool()
async def slow(seconds: float, marker: str = "") -> str:
    """Sleep for ``seconds``; touch the file ``marker`` first, so a test knows the call arrived."""
    if marker:
        await anyio.Path(marker).touch()
    await asyncio.sleep(seconds)
    return "done"


@server.tool()
def grow() -> str:
    """Offer one more tool, ``extra``, from now on (for the tool-list refresh test)."""

    def extra() -> str:
        """A tool that appeared after start-up."""
        return "extra"

    server.add_tool(extra, name="extra")
    return "grown"


@server.tool(name="text.upper")
def upper(text: str) -> str:
    """Upper-case ``text`` (its name has a dot, which Anthropic tool names do not allow)."""
    return text.upper()


if __name__ == "__main__":
    server.run()
