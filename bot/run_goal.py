"""`airlock run`: one goal in the terminal, with the same settings and store as the bot."""

from __future__ import annotations

import getpass
from contextlib import AsyncExitStack

from rich.console import Console

from agent_core.anthropic_llm import AnthropicLLM
from agent_core.config import Settings
from agent_core.models import Run, RunStatus
from agent_core.orchestrator import Orchestrator, RunPolicy
from agent_core.store import open_store
from agent_core.tools import ToolRegistry
from agent_core.tools.builtins import builtin_tools
from agent_core.tools.mcp import McpTools, load_mcp_config
from bot.terminal import TerminalChannel

__all__ = ["run_goal"]


def local_operator() -> str:
    """The identity decisions at this keyboard are recorded under."""
    return f"local:{getpass.getuser()}"


async def run_goal(
    settings: Settings, goal: str, *, dry_run: bool, auto_approve: bool, console: Console
) -> Run:
    """Plan and run ``goal`` with the terminal as the operator channel."""
    async with AsyncExitStack() as stack:
        store = await open_store(
            settings.effective_store_url,
            poll_interval=settings.signal_poll_seconds,
            redis_max_connections=settings.redis_max_connections,
        )
        stack.push_async_callback(store.close)
        llm = await stack.enter_async_context(AnthropicLLM.from_settings(settings))
        registry = ToolRegistry(builtin_tools(settings))
        if settings.mcp_config is not None:
            mcp = McpTools(config=load_mcp_config(settings.mcp_config), registry=registry)
            await stack.enter_async_context(mcp)
            for failure in mcp.failures:
                console.print(
                    f"[yellow]MCP server {failure.server} unavailable: {failure.reason}[/]"
                )
        settings.effective_workspace_dir.mkdir(parents=True, exist_ok=True)
        operator = local_operator()
        channel = TerminalChannel(operator=operator, console=console, auto_approve=auto_approve)
        orchestrator = Orchestrator(
            store=store,
            llm=llm,
            tools=registry,
            channel=channel,
            policy=RunPolicy.from_settings(settings),
            workspace=settings.effective_workspace_dir,
        )
        run = await store.create_run(Run(goal=goal, requester=operator, dry_run=dry_run))
        console.print(f"[dim]run {run.id} · store {settings.effective_store_url}[/]")
        return await orchestrator.execute(run.id)


def exit_code(run: Run) -> int:
    """0 when the run completed, 1 otherwise."""
    return 0 if run.status is RunStatus.COMPLETED else 1
