"""`airlock run`: one goal in the terminal, with the same settings and store as the bot."""

from __future__ import annotations

from contextlib import AsyncExitStack

from rich.console import Console

from agent_core.anthropic_llm import AnthropicLLM
from agent_core.approvals import (
    ApprovalPolicy,
    Authority,
    DecisionService,
    local_identity,
    schema_edit_check,
)
from agent_core.audit import Audit
from agent_core.config import Settings
from agent_core.models import RiskLevel, Run, RunStatus
from agent_core.orchestrator import Orchestrator, RunPolicy
from agent_core.runner import Runner
from agent_core.store import open_settings_store
from agent_core.tools import Tool, ToolRegistry
from agent_core.tools.builtins import builtin_tools
from agent_core.tools.mcp import McpTools, load_mcp_config
from bot.terminal import TerminalChannel

__all__ = ["exit_code", "run_goal"]

FINAL = {status for status in RunStatus if status.is_final}


def with_risk_overrides(tools: list[Tool], overrides: dict[str, RiskLevel]) -> list[Tool]:
    """``tools`` with the configured per-tool risks applied (configuration, never the model)."""
    for tool in tools:
        tool.risk = overrides.get(tool.name, tool.risk)
    return tools


async def run_goal(
    settings: Settings,
    goal: str | None,
    *,
    resume: str | None = None,
    dry_run: bool,
    auto_approve: bool,
    console: Console,
) -> Run | None:
    """Plan and run ``goal`` (or resume run ``resume``) with the terminal as the channel.

    Returns None when airlock is halted and no new run may start.
    """
    async with AsyncExitStack() as stack:
        store = await open_settings_store(settings)
        stack.push_async_callback(store.close)
        halt = await store.get_halt()
        if resume is None and halt is not None and halt.halted:
            console.print(f"[red]airlock is halted by {halt.by}: {halt.reason or 'no reason'}[/]")
            return None
        llm = await stack.enter_async_context(AnthropicLLM.from_settings(settings))
        registry = ToolRegistry(with_risk_overrides(builtin_tools(settings), settings.tool_risks))
        if settings.mcp_config is not None:
            mcp = McpTools(config=load_mcp_config(settings.mcp_config), registry=registry)
            await stack.enter_async_context(mcp)
            for failure in mcp.failures:
                console.print(
                    f"[yellow]MCP server {failure.server} unavailable: {failure.reason}[/]"
                )
        settings.effective_workspace_dir.mkdir(parents=True, exist_ok=True)
        operator = local_identity()
        channel = TerminalChannel(operator=operator, console=console, auto_approve=auto_approve)
        audit = Audit(store=store)
        service = DecisionService(
            store=store,
            authority=Authority.from_settings(settings, members_of=channel.members_of),
            audit=audit,
            check_edit=schema_edit_check(registry),
        )
        channel.decide = service.decide
        policy = RunPolicy.from_settings(settings)
        orchestrator = Orchestrator(
            store=store, llm=llm, tools=registry, channel=channel, policy=policy,
            workspace=settings.effective_workspace_dir,
        )  # fmt: skip
        runner = Runner(store=store, orchestrator=orchestrator, channel=channel,
                        policy=ApprovalPolicy.from_settings(settings), only=set())  # fmt: skip
        await runner.start()
        stack.push_async_callback(runner.stop)
        if resume is None:
            assert goal is not None
            run = await store.create_run(Run(goal=goal, requester=operator, dry_run=dry_run))
        else:
            run = await store.get_run(resume)
        console.print(f"[dim]run {run.id} · store {settings.effective_store_url}[/]")
        runner.submit(run.id)
        return await runner.wait_for(run.id, FINAL)


def exit_code(run: Run | None) -> int:
    """0 when the run completed, 1 otherwise."""
    return 0 if run is not None and run.status is RunStatus.COMPLETED else 1
