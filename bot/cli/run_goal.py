"""`airlock run`: one goal in the terminal, with the same settings and store as the bot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import timedelta

from rich.console import Console

from agent_core import (
    FINAL_STATUSES,
    Admission,
    Airlock,
    ChannelKind,
    ChannelParts,
    ConfigError,
    NotFound,
    Run,
    RunStatus,
    Settings,
    Store,
    configure_tracing,
    local_identity,
    redact,
    shown_url,
    utcnow,
)
from bot.cli.status import StatusLine
from bot.cli.terminal import TerminalChannel
from bot.slack.render import visible

__all__ = ["exit_code", "run_goal"]


async def run_goal(
    settings: Settings,
    goal: str | None,
    *,
    resume: str | None = None,
    dry_run: bool,
    auto_approve: bool,
    console: Console,
    wait: bool = False,
) -> Run | None:
    """Plan and run ``goal`` (or resume run ``resume``) with the terminal as the channel.

    Returns None when no new run may start: airlock is halted, or a limit refuses it.
    ConfigError when ``resume`` names no run, or (unless ``wait``) another process holds it.
    """
    status = StatusLine()
    async with AsyncExitStack() as stack:
        stack.callback(status.hide)
        status.show("starting: the store, the model client, the tools")
        # Flushes spans last, after everything else has stopped; blocks, so in a thread.
        stack.push_async_callback(asyncio.to_thread, configure_tracing(settings))
        airlock = await stack.enter_async_context(Airlock.from_settings(settings))
        store = airlock.store
        if resume is not None:
            await _existing(store, resume, settings)
        halt = await store.get_halt()
        status.hide()  # what follows may print
        if resume is None and halt is not None and halt.halted:
            reason = redact(halt.reason or "no reason")
            why = visible(f"airlock is halted by {halt.by}: {reason}")
            console.print(why, style="red", markup=False)
            return None
        if resume is None and (refused := await _refusal(airlock.admission)) is not None:
            console.print(refused, style="red", markup=False)
            return None
        status.show("starting: the model client, memory and the tools")
        operator = local_identity()

        def terminal(parts: ChannelParts) -> TerminalChannel:
            return TerminalChannel(operator=operator, console=console, auto_approve=auto_approve,
                                   status=status, decide=parts.decide)  # fmt: skip

        await airlock.connect(terminal, hosting="terminal", report=_reporter(console, status))
        await airlock.start_runs()
        stack.push_async_callback(airlock.stop_runs)
        if resume is None:
            assert goal is not None
            run = await store.create_run(Run(goal=goal, requester=operator, dry_run=dry_run,
                                             channel_kind=ChannelKind.TERMINAL))  # fmt: skip
        else:
            run = await store.get_run(resume)
        status.hide()
        console.print(f"run {run.id} · store {shown_url(settings.effective_store_url)}",
                      style="dim", markup=False)  # fmt: skip
        if not await _take(airlock, run, wait=wait, console=console):
            return await store.get_run(run.id)  # it ended while this terminal waited
        if resume is None:
            status.show("planning")
        return await airlock.wait_for(run.id, FINAL_STATUSES)


def _reporter(console: Console, status: StatusLine) -> Callable[[str], None]:
    """Where tool set-up reports a problem (an MCP server that would not start): printed,
    the status line out of its way."""

    def report(line: str) -> None:
        status.hide()
        console.print(f"[yellow]{line}[/]")

    return report


async def _existing(store: Store, run_id: str, settings: Settings) -> None:
    try:
        await store.get_run(run_id)
    except NotFound:
        where = shown_url(settings.effective_store_url)
        raise ConfigError([f"--resume {run_id}: there is no such run in {where}"]) from None


async def _take(airlock: Airlock, run: Run, *, wait: bool, console: Console) -> bool:
    """Take the run's lease for this terminal and start it. While another process holds it:
    say who and until when, and exit 2, or with ``wait`` wait until it is let go or lapses
    (a crashed holder's does). False if the run ended meanwhile."""
    told = ""
    while not await airlock.submit(run.id):
        held = await airlock.held_by(run.id)
        if held is None:  # let go between the two looks: take it now
            continue
        holder, seconds = held
        until = (utcnow() + timedelta(seconds=seconds)).strftime("%H:%M:%S UTC")
        if not wait:
            raise ConfigError([
                f"--resume {run.id}: held by {holder} until {until} (in {seconds:.0f} s), which is"
                " working on it or stopped without letting go; add --wait to take it over then"
            ])  # fmt: skip
        if holder != told:
            console.print(f"run {run.id} is held by {holder} until {until}; waiting for it",
                          style="yellow", markup=False)  # fmt: skip
            told = holder
        if (await airlock.store.get_run(run.id)).status in FINAL_STATUSES:
            return False
        # Polling: a lease lapsing sends no event.
        await asyncio.sleep(min(seconds, 1.0))
    return True


async def _refusal(admission: Admission) -> str | None:
    """Why the person at this keyboard may not start a run now; None when they may."""
    reached = await admission.admit(local_identity())
    return None if reached is None else reached.describe(admission.clock.now())


def exit_code(run: Run | None) -> int:
    """0 when the run completed, 1 otherwise."""
    return 0 if run is not None and run.status is RunStatus.COMPLETED else 1
