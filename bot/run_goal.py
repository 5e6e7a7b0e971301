"""`airlock run`: one goal in the terminal, with the same settings and store as the bot."""

from __future__ import annotations

from contextlib import AsyncExitStack

from rich.console import Console

from agent_core.anthropic_llm import AnthropicLLM
from agent_core.approvals import (
    ApprovalPolicy,
    local_identity,
)
from agent_core.config import Settings
from agent_core.models import FINAL_STATUSES, Run, RunStatus
from agent_core.runner import Runner
from agent_core.store import open_settings_store
from bot import wiring
from bot.terminal import TerminalChannel

__all__ = ["exit_code", "run_goal"]


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
        memory = wiring.memory(settings, store, stack)
        registry = await wiring.tools(
            settings, stack, report=lambda line: console.print(f"[yellow]{line}[/]"), memory=memory
        )
        operator = local_identity()
        channel = TerminalChannel(operator=operator, console=console, auto_approve=auto_approve)
        channel.decide = wiring.decisions(settings, store, registry, channel).decide
        orchestrator = wiring.orchestrator(settings, store, llm, registry, channel, memory=memory)
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
        return await runner.wait_for(run.id, FINAL_STATUSES)


def exit_code(run: Run | None) -> int:
    """0 when the run completed, 1 otherwise."""
    return 0 if run is not None and run.status is RunStatus.COMPLETED else 1
