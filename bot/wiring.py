"""Assembling the agent core from settings, shared by `airlock serve` and `airlock run`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack

from agent_core.approvals import Authority, DecisionService, schema_edit_check
from agent_core.audit import Audit
from agent_core.channel import OperatorChannel
from agent_core.config import Settings
from agent_core.llm import LLM
from agent_core.orchestrator import Orchestrator, RunPolicy
from agent_core.store import Store
from agent_core.tools import ToolRegistry
from agent_core.tools.builtins import builtin_tools
from agent_core.tools.mcp import McpTools, load_mcp_config

__all__ = ["decisions", "orchestrator", "tools"]


async def tools(
    settings: Settings, stack: AsyncExitStack, *, report: Callable[[str], None]
) -> ToolRegistry:
    """Built-in tools (with configured risk overrides) and the MCP servers' tools."""
    built = builtin_tools(settings)
    for tool in built:
        tool.risk = settings.tool_risks.get(tool.name, tool.risk)
    registry = ToolRegistry(built)
    if settings.mcp_config is not None:
        mcp = McpTools(config=load_mcp_config(settings.mcp_config), registry=registry)
        await stack.enter_async_context(mcp)
        for failure in mcp.failures:
            report(f"MCP server {failure.server} unavailable: {failure.reason}")
    settings.effective_workspace_dir.mkdir(parents=True, exist_ok=True)
    return registry


def decisions(
    settings: Settings, store: Store, registry: ToolRegistry, channel: OperatorChannel
) -> DecisionService:
    """The decision path, with authority from settings and groups resolved by ``channel``."""
    return DecisionService(
        store=store,
        authority=Authority.from_settings(settings, members_of=channel.members_of),
        audit=Audit(store=store),
        check_edit=schema_edit_check(registry),
    )


def orchestrator(
    settings: Settings, store: Store, llm: LLM, registry: ToolRegistry, channel: OperatorChannel
) -> Orchestrator:
    """The orchestrator with the run policy the settings describe."""
    return Orchestrator(
        store=store,
        llm=llm,
        tools=registry,
        channel=channel,
        policy=RunPolicy.from_settings(settings),
        workspace=settings.effective_workspace_dir,
    )
