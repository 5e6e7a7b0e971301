"""One MCP stdio server as a tool source: its process, its session, and its tools.

:class:`McpToolSource` runs the server in a background task, registers its tools as
``server__tool`` with ``source="mcp:<server>"``, forwards calls, and withdraws its tools
when the process dies. Failures are recorded as :class:`McpFailure`, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TextIO

import anyio
import mcp.types as types
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from pydantic import ValidationError

from agent_core.errors import ToolError, ToolTimeout
from agent_core.tools.base import Tool, ToolContext, ToolHandler
from agent_core.tools.mcp._end_watch import EndWatch
from agent_core.tools.mcp._log_limit import LOG_LIMIT, SERVER
from agent_core.tools.mcp._results import result_text
from agent_core.tools.mcp.config import McpServerConfig, public_name
from agent_core.tools.registry import ToolRegistry

logger = logging.getLogger(__name__)
LOG_LIMIT.install()

_MAX_PAGES = 100


class McpServerState(StrEnum):
    """Where a server is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"
    DIED = "died"
    STOPPED = "stopped"


@dataclass(kw_only=True, frozen=True)
class McpFailure:
    """A server that failed to start or died while running."""

    server: str
    """The server's name in the config."""
    phase: Literal["start", "run"]
    """``start``: it never offered tools; ``run``: it died and its tools were withdrawn."""
    reason: str
    """What went wrong, fit for a person."""


class _StartFailed(Exception):
    """Start-up failed for a reason of ours (a name clash, endless paging)."""


class McpToolSource:
    """One MCP stdio server: its process, its session, and its tools in the registry."""

    def __init__(
        self, *, name: str, config: McpServerConfig, registry: ToolRegistry, errlog: TextIO
    ) -> None:
        self.name = name
        self.config = config
        self.state = McpServerState.STARTING
        self.failure: McpFailure | None = None
        """Why it failed or died, if it did."""
        self.tool_names: list[str] = []
        """The names it registered (kept after a withdrawal, for reports)."""
        self._registry = registry
        self._errlog = errlog
        self._session: ClientSession | None = None
        # An anyio scope, not task.cancel(): the SDK's stdio shutdown is shielded against
        # anyio cancellation only, and a natively cancelled shutdown could leak the process.
        self._scope: anyio.CancelScope | None = None
        self._stop_requested = False
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def source(self) -> str:
        """The ``Tool.source`` of its tools."""
        return f"mcp:{self.name}"

    def start(self) -> None:
        """Start the server in a background task (kept by this object); call it once."""
        if self._task is not None:
            raise RuntimeError(f"MCP server {self.name!r} was started already")
        scope = anyio.CancelScope()  # needs the running loop, hence not in __init__
        if self._stop_requested:
            scope.cancel()
        self._scope = scope
        self._task = asyncio.create_task(self._run(scope), name=self.source)

    async def wait_started(self) -> None:
        """Return once the server runs, failed to start, or was stopped."""
        await self._started.wait()

    def stop(self) -> None:
        """Ask the server to stop, without waiting; its tools are withdrawn as it stops."""
        self._stop_requested = True
        if self._scope is not None:
            self._scope.cancel()

    async def aclose(self) -> None:
        """Stop the server and wait for its process to end; its tools are withdrawn."""
        self.stop()
        if self._task is None:
            self.state = McpServerState.STOPPED
            self._started.set()
            return
        # Shielded: if our caller is cancelled, the shutdown still finishes in its task.
        await asyncio.shield(self._task)

    async def _run(self, scope: anyio.CancelScope) -> None:
        SERVER.set(self.name)  # this task's own context: the SDK's tasks inherit it
        try:
            with scope:
                await self._serve(scope)
        except Exception as error:
            self._fail(_describe(error))
        finally:
            LOG_LIMIT.flush(self.name)
            self._session = None
            self._registry.withdraw(self.source)
            if self.state in (McpServerState.STARTING, McpServerState.RUNNING):
                self.state = McpServerState.STOPPED
            self._started.set()

    async def _serve(self, scope: anyio.CancelScope) -> None:
        params = StdioServerParameters(
            command=self.config.command,
            args=self.config.args,
            env=self.config.env,
            cwd=self.config.cwd,
        )
        async with stdio_client(params, errlog=self._errlog) as (read, write):
            watched = EndWatch(read, lambda: self._connection_lost(scope))
            async with ClientSession(
                watched, write, read_timeout_seconds=self.config.start_timeout_seconds
            ) as session:
                await session.initialize()
                self._register(await _list_tools(session))
                self._session = session
                self.state = McpServerState.RUNNING
                self._started.set()
                logger.info(
                    "MCP server started",
                    extra={"mcp_server": self.name, "tools": self.tool_names},
                )
                while True:  # a tool list is context that goes stale: list it again
                    await anyio.sleep(self.config.tools_ttl_seconds)
                    self._refresh(await _list_tools(session))

    def _register(self, listed: list[types.Tool]) -> None:
        tools = [self._tool(spec) for spec in listed]
        names = [tool.name for tool in tools]
        clashes = sorted({n for n in names if n in self._registry or names.count(n) > 1})
        if clashes:
            raise _StartFailed(f"tool names already taken: {', '.join(clashes)}")
        unknown = sorted(set(self.config.risks) - {spec.name for spec in listed})
        if unknown:
            logger.warning(
                "MCP config sets risks for tools the server does not offer",
                extra={"mcp_server": self.name, "unknown_tools": unknown},
            )
        for tool in tools:
            self._registry.register(tool)
        self.tool_names = names

    def _refresh(self, listed: list[types.Tool]) -> None:
        """Replace its tools with ``listed``; no await in between, so no run sees a gap."""
        before = self.tool_names
        self._registry.withdraw(self.source)
        try:
            self._register(listed)
        except _StartFailed as error:  # a new name clashes: keep serving the old list
            logger.warning(
                "MCP tool list refresh refused",
                extra={"mcp_server": self.name, "reason": str(error)},
            )
            self._register_known(before, listed)
            return
        if self.tool_names != before:
            logger.info(
                "MCP tools changed", extra={"mcp_server": self.name, "tools": self.tool_names}
            )

    def _register_known(self, names: list[str], listed: list[types.Tool]) -> None:
        for tool in (self._tool(spec) for spec in listed):
            if tool.name in names and tool.name not in self._registry:
                self._registry.register(tool)
        self.tool_names = [n for n in names if n in self._registry]

    def _tool(self, spec: types.Tool) -> Tool:
        name = public_name(self.name, spec.name)
        about = spec.description or spec.title or "No description."
        return Tool(
            name=name,
            description=f"[MCP server '{self.name}', tool '{spec.name}'] {about}",
            input_schema=spec.input_schema,
            risk=self.config.risks.get(spec.name, self.config.default_risk),
            handler=self._handler(spec.name, name),
            timeout_seconds=self.config.timeout_seconds,
            grantable=self.config.grantable,
            reads_private_data=self.config.reads_private_data,
            source=self.source,
        )

    def _handler(self, remote: str, public: str) -> ToolHandler:
        async def handle(arguments: dict[str, Any], context: ToolContext) -> str:
            return await self.call(remote, arguments, public=public)

        return handle

    async def call(self, tool: str, arguments: dict[str, Any], *, public: str = "") -> str:
        """Call the server's own ``tool``: its output as text, or ToolError naming ``public``."""
        public = public or public_name(self.name, tool)
        session = self._session
        if session is None:
            raise ToolError(public, f"MCP server '{self.name}' is not running ({self.state})")
        try:
            result = await session.call_tool(
                tool, arguments, read_timeout_seconds=self.config.timeout_seconds
            )
        except MCPError as error:
            raise self._call_error(public, error) from error
        except (RuntimeError, ValidationError) as error:
            raise ToolError(public, f"unusable answer from MCP server: {error}") from error
        text = result_text(result)
        if result.is_error:
            raise ToolError(public, text or "the tool reported an error")
        return text

    def _call_error(self, public: str, error: MCPError) -> ToolError:
        if error.code == types.REQUEST_TIMEOUT:
            return ToolTimeout(public, self.config.timeout_seconds)
        if error.code == types.CONNECTION_CLOSED and self._stop_requested:
            return ToolError(public, f"MCP server '{self.name}' was stopped during the call")
        if error.code == types.CONNECTION_CLOSED:
            return ToolError(public, f"MCP server '{self.name}' died during the call")
        return ToolError(public, f"MCP error {error.code}: {error.message}")

    def _connection_lost(self, scope: anyio.CancelScope) -> None:
        if self.state is not McpServerState.RUNNING or self._stop_requested:
            return  # a failed start or our own stop: _run reports those
        self.state = McpServerState.DIED
        self._session = None
        gone = self._registry.withdraw(self.source)
        reason = "the server process exited or closed its output"
        self.failure = McpFailure(server=self.name, phase="run", reason=reason)
        logger.warning(
            "MCP server died; its tools are withdrawn",
            extra={"mcp_server": self.name, "reason": reason, "withdrawn": gone},
        )
        scope.cancel()

    def _fail(self, reason: str) -> None:
        phase: Literal["start", "run"] = "start" if self.state is McpServerState.STARTING else "run"
        if self.failure is None:
            self.failure = McpFailure(server=self.name, phase=phase, reason=reason)
        self.state = McpServerState.FAILED if phase == "start" else McpServerState.DIED
        message = "MCP server failed to start" if phase == "start" else "MCP server failed"
        logger.warning(message, extra={"mcp_server": self.name, "reason": reason})


async def _list_tools(session: ClientSession) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        params = None if cursor is None else types.PaginatedRequestParams(cursor=cursor)
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return tools
    raise _StartFailed(f"tools/list did not end after {_MAX_PAGES} pages")


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in error.exceptions)
    if isinstance(error, MCPError) and error.code == types.CONNECTION_CLOSED:
        return "the server exited or closed its output before it was ready"
    if isinstance(error, MCPError):
        return f"{error.message} (MCP error {error.code})"
    if isinstance(error, _StartFailed):
        return str(error)
    return f"{type(error).__name__}: {error}"
