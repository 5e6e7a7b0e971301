"""Assembling the agent core from settings, shared by `airlock serve` and `airlock run`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from agent_core.approvals import Authority, DecisionService, schema_edit_check
from agent_core.audit import Audit
from agent_core.channel import OperatorChannel
from agent_core.config import Settings
from agent_core.errors import AirlockError
from agent_core.limits import SpendLedger
from agent_core.llm import LLM
from agent_core.orchestrator import Orchestrator, RunPolicy
from agent_core.store import Store
from agent_core.tools import ToolRegistry
from agent_core.tools.builtins import builtin_tools
from agent_core.tools.mcp import McpTools, load_mcp_config

if TYPE_CHECKING:  # importing memory loads FAISS; only a process that uses it pays
    from agent_core.memory.service import AgentMemory

__all__ = ["decisions", "memory", "orchestrator", "tools"]

logger = logging.getLogger(__name__)


def memory(settings: Settings, store: Store, stack: AsyncExitStack) -> AgentMemory | None:
    """Session facts and long-term memory, unless turned off; indexes saved on the way out.

    The embedding model starts loading in a background thread now (importing torch takes
    seconds), while the caller goes on starting up; nothing waits for it but the first
    recall. A model that fails to load is logged here and raises again where it is used.
    """
    if not settings.memory_enabled:
        return None
    from agent_core.memory.service import AgentMemory

    agent_memory = AgentMemory.from_settings(settings, store)
    stack.push_async_callback(agent_memory.longterm.close)
    warming = asyncio.create_task(_warm(agent_memory), name="airlock-warm-memory")
    stack.push_async_callback(_cancelled, warming)
    return agent_memory


async def _warm(agent_memory: AgentMemory) -> None:
    try:
        await agent_memory.longterm.embedder.warm()
    except AirlockError as error:
        logger.warning("embedding model unavailable; memory will fail where used",
                       extra={"error": str(error)})  # fmt: skip


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def tools(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    report: Callable[[str], None],
    memory: AgentMemory | None = None,
) -> ToolRegistry:
    """Built-in tools (with configured risk overrides), memory tools and the MCP servers' tools."""
    built = builtin_tools(settings)
    if memory is not None:
        from agent_core.tools.builtins.memory import memory_tools

        built += memory_tools(memory.longterm)
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
    settings: Settings,
    store: Store,
    llm: LLM,
    registry: ToolRegistry,
    channel: OperatorChannel,
    *,
    memory: AgentMemory | None = None,
) -> Orchestrator:
    """The orchestrator with the run policy the settings describe, charging daily spend."""
    return Orchestrator(
        store=store,
        llm=llm,
        tools=registry,
        channel=channel,
        policy=RunPolicy.from_settings(settings),
        workspace=settings.effective_workspace_dir,
        memory=memory,
        ledger=SpendLedger(store=store),
    )
