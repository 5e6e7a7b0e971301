"""Assembling the agent core from settings, shared by `airlock serve` and `airlock run`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_core.approvals import (
    ApprovalPolicy,
    Authority,
    DecisionService,
    RiskPolicy,
    edit_risk_check,
    schema_edit_check,
)
from agent_core.audit.trail import Audit
from agent_core.channel import OperatorChannel
from agent_core.config import Settings
from agent_core.errors import AirlockError
from agent_core.llm import LLM
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.runs.claims import Claims, LocalClaims, worker_name
from agent_core.runs.host import RunHost
from agent_core.runs.leased import LeasedClaims
from agent_core.runs.limits import SpendLedger
from agent_core.runs.orchestrator import Orchestrator, RunPolicy
from agent_core.runs.slots import RunQueue
from agent_core.store import Store
from agent_core.store.run_queue import RedisRunQueue
from agent_core.tools import ToolRegistry
from agent_core.tools.builtins import builtin_tools
from agent_core.tools.mcp import McpTools, load_mcp_config
from agent_core.tools.sandbox import CommandSandbox

if TYPE_CHECKING:  # importing memory loads FAISS; only a process that uses it pays
    from agent_core.memory.service import AgentMemory

__all__ = ["Agent", "agent", "decisions", "memory", "orchestrator", "terminal_host", "tools"]

logger = logging.getLogger(__name__)

_UNLIMITED_SLOTS = 1000
"""A worker's slots when AIRLOCK_MAX_CONCURRENT_RUNS is 0 (no limit)."""


@dataclass(kw_only=True)
class Agent:
    """The agent core of a process that serves Slack or works on runs."""

    store: Store
    channel: OperatorChannel
    registry: ToolRegistry
    orchestrator: Orchestrator
    memory: AgentMemory | None
    queue: RedisRunQueue | None
    """The shared run queue (Redis), or None when runs work in this process (SQLite)."""

    def runs(self, settings: Settings) -> RunHost:
        """What works on runs here: a worker on the shared queue (Redis), else this process
        under leases in the store (SQLite)."""
        claims: Claims
        if self.queue is None:
            slots = RunQueue(limit=settings.max_concurrent_runs)
            claims = LocalClaims(store=self.store, lease_seconds=settings.lease_seconds)
        else:
            slots = RunQueue()  # the worker counts its own slots: it reads no more than it has
            claims = LeasedClaims(
                queue=self.queue, store=self.store, lease_seconds=settings.lease_seconds,
                slots=settings.max_concurrent_runs or _UNLIMITED_SLOTS,
            )  # fmt: skip
        return RunHost(store=self.store, orchestrator=self.orchestrator, channel=self.channel,
                       policy=ApprovalPolicy.from_settings(settings), claims=claims,
                       slots=slots)  # fmt: skip

    async def submit(self, run_id: str) -> bool:
        """Queue ``run_id`` for the workers (a front end with no worker of its own)."""
        if self.queue is None:
            raise RuntimeError("runs are queued only with a Redis store")
        await self.queue.enqueue(run_id)
        return True


def terminal_host(
    settings: Settings, store: Store, orchestrator: Orchestrator, channel: OperatorChannel
) -> RunHost:
    """The host of a terminal's ``airlock run``: it works only on the runs submitted to it,
    each under a lease in the store, so no other process takes one up meanwhile."""
    claims = LocalClaims(store=store, name=worker_name(terminal=True), everything=False,
                         lease_seconds=settings.lease_seconds)  # fmt: skip
    return RunHost(store=store, orchestrator=orchestrator, channel=channel,
                   policy=ApprovalPolicy.from_settings(settings), claims=claims)  # fmt: skip


async def agent(
    settings: Settings, store: Store, channel: OperatorChannel, stack: AsyncExitStack
) -> Agent:
    """The model, memory, tools and orchestrator the settings describe, reporting to ``channel``."""
    llm = await stack.enter_async_context(AnthropicLLM.from_settings(settings))
    agent_memory = memory(settings, store, stack)
    registry = await tools(
        settings, stack, report=lambda line: logger.warning(line), memory=agent_memory
    )
    return Agent(
        store=store, channel=channel, registry=registry, memory=agent_memory,
        orchestrator=orchestrator(settings, store, llm, registry, channel, memory=agent_memory),
        queue=store.run_queue(),
    )  # fmt: skip


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
    """Built-in tools, memory tools and the MCP servers' tools.

    Their configured risk overrides are applied where every call's risk is worked out
    (:class:`RiskPolicy`, through the run policy and the decision path), not here. The
    command sandbox is checked here, once: when it cannot start (or is turned off),
    ``report`` gets one line saying so.
    """
    sandbox = CommandSandbox.from_settings(settings)
    if (line := (await sandbox.check()).startup_line()) is not None:
        report(line)
    built = builtin_tools(settings, sandbox=sandbox)
    if memory is not None:
        from agent_core.tools.builtins.memory import memory_tools

        built += memory_tools(memory.longterm)
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
        edit_risk=edit_risk_check(registry, RiskPolicy.from_settings(settings), store),
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
