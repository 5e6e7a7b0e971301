"""`airlock run`: one goal in the terminal, with the same settings and store as the bot."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from rich.console import Console

from agent_core.anthropic_llm import AnthropicLLM
from agent_core.approvals import (
    ApprovalPolicy,
    local_identity,
)
from agent_core.config import Settings
from agent_core.limits import Admission, Limits
from agent_core.models import FINAL_STATUSES, Run, RunStatus
from agent_core.orchestrator import Orchestrator
from agent_core.runner import Runner
from agent_core.store import Store, open_settings_store
from agent_core.telemetry import configure_tracing
from agent_core.worker import Worker, worker_name
from bot import wiring
from bot.render import visible
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

    Returns None when no new run may start: airlock is halted, or a limit refuses it.
    """
    async with AsyncExitStack() as stack:
        # Flushes spans last, after everything else has stopped; blocks, so in a thread.
        stack.push_async_callback(asyncio.to_thread, configure_tracing(settings))
        store = await open_settings_store(settings)
        stack.push_async_callback(store.close)
        halt = await store.get_halt()
        if resume is None and halt is not None and halt.halted:
            why = visible(f"airlock is halted by {halt.by}: {halt.reason or 'no reason'}")
            console.print(why, style="red", markup=False)
            return None
        if resume is None and (refused := await _refusal(settings, store)) is not None:
            console.print(refused, style="red", markup=False)
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
        runner = _runner(settings, store, orchestrator, channel)
        await runner.start()
        stack.push_async_callback(runner.stop)
        if resume is None:
            assert goal is not None
            run = await store.create_run(Run(goal=goal, requester=operator, dry_run=dry_run))
        else:
            run = await store.get_run(resume)
        console.print(f"[dim]run {run.id} · store {settings.effective_store_url}[/]")
        if isinstance(runner, Worker):
            if not await runner.take(run.id):
                console.print(f"[red]run {run.id} is being worked on by a worker; not here[/]")
                return await store.get_run(run.id)
        else:
            runner.submit(run.id)
        return await runner.wait_for(run.id, FINAL_STATUSES)


def _runner(
    settings: Settings, store: Store, orchestrator: Orchestrator, channel: TerminalChannel
) -> Runner:
    """The terminal's runner; with a Redis store it holds a lease on its run, as a worker does,
    so no worker takes the run up while this terminal works on it."""
    policy = ApprovalPolicy.from_settings(settings)
    queue = wiring.run_queue(store)
    if queue is None:
        return Runner(store=store, orchestrator=orchestrator, channel=channel, policy=policy,
                      only=set())  # fmt: skip
    return Worker(store=store, orchestrator=orchestrator, channel=channel, policy=policy,
                  only=set(), runs=queue, reads=False, name=worker_name(terminal=True),
                  lease_seconds=settings.lease_seconds)  # fmt: skip


async def _refusal(settings: Settings, store: Store) -> str | None:
    """Why the person at this keyboard may not start a run now; None when they may."""
    admission = Admission(store=store, limits=Limits.from_settings(settings))
    reached = await admission.admit(local_identity())
    return None if reached is None else reached.describe(admission.clock.now())


def exit_code(run: Run | None) -> int:
    """0 when the run completed, 1 otherwise."""
    return 0 if run is not None and run.status is RunStatus.COMPLETED else 1
