"""The ``airlock`` command line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent_core.approvals import Refused
from agent_core.config import Settings, env_name, load_settings
from agent_core.errors import ConfigError
from agent_core.logs import configure_logging
from agent_core.models import DecisionKind, Run
from agent_core.store import Store, open_settings_store
from bot.render import visible

if TYPE_CHECKING:
    from bot.operate import Operator

__all__ = ["app", "main"]

app = typer.Typer(
    name="airlock",
    help="A Slack chat-ops bot that puts a human in the loop of an AI agent.",
    no_args_is_help=True,
    add_completion=False,
)
# soft_wrap: each problem stays on one line, however narrow the terminal.
err = Console(stderr=True, soft_wrap=True)
out = Console()

EnvFile = Annotated[
    Path,
    typer.Option("--env-file", help="Read settings from this file as well as the environment."),
]

CONFIG_EXIT = 2


def _settings(env_file: Path) -> Settings:
    try:
        settings = load_settings(env_file)
    except ConfigError as error:
        err.print("[bold red]airlock: invalid settings[/]")
        for problem in error.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        err.print("See .env.example for every setting and its format.")
        raise typer.Exit(CONFIG_EXIT) from None
    return settings


Port = Annotated[int | None, typer.Option(help="HTTP port (default: AIRLOCK_PORT or 3000).")]


@app.command()
def serve(
    port: Port = None,
    no_worker: Annotated[
        bool,
        typer.Option("--no-worker", help="Only serve Slack and queue runs (a Redis store)."),
    ] = False,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Run the Slack bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP on /slack/events)."""
    settings = _ready("serve", env_file, settings_missing=lambda s: s.missing_for_serve())
    from bot.server import serve as run_server

    _until_stopped(run_server(settings, port=port or settings.port, worker=not no_worker))


@app.command()
def worker(port: Port = None, env_file: EnvFile = Path(".env")) -> None:
    """Work on queued runs (a Redis store), beside front ends started with `serve --no-worker`."""
    settings = _ready("worker", env_file, settings_missing=lambda s: s.missing_for_worker())
    from bot.worker import work

    _until_stopped(work(settings, port=port or settings.port))


def _ready(
    command: str, env_file: Path, *, settings_missing: Callable[[Settings], list[str]]
) -> Settings:
    """Valid settings with nothing missing for ``command``, logging configured; else exit 2."""
    settings = _settings(env_file)
    missing = settings_missing(settings)
    if missing:
        err.print(f"[bold red]airlock {command}: missing settings[/]")
        for name in missing:
            err.print(f"  {name} is not set", markup=False, highlight=False)
        err.print(
            "Copy .env.example to .env and fill them in, or export them "
            "(README: 'Connect to a real Slack workspace')."
        )
        raise typer.Exit(CONFIG_EXIT)
    configure_logging(settings.log_level)
    return settings


def _until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Run a server until SIGTERM; a setting that turns out wrong on start-up exits 2."""
    try:
        asyncio.run(main)
    except ConfigError as error:
        for problem in error.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(CONFIG_EXIT) from None


@app.command()
def run(
    goal: Annotated[str | None, typer.Argument(help="What the agent should achieve.")] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Resume this run instead of starting one.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan, show the plan, stop.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Approve every request without asking (scripts).")
    ] = False,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Run one goal in the terminal: plan, approvals at the keyboard, result."""
    if (goal is None) == (resume is None):
        err.print("airlock run: give a goal, or --resume RUN_ID (not both)")
        raise typer.Exit(CONFIG_EXIT)
    settings = _settings(env_file)
    if settings.anthropic_api_key is None:
        err.print("[bold red]airlock run: missing settings[/]")
        err.print("  ANTHROPIC_API_KEY is not set", markup=False, highlight=False)
        err.print("Copy .env.example to .env and fill it in, or export it.")
        raise typer.Exit(CONFIG_EXIT)
    # The terminal is for the run itself; routine INFO lines would only clutter it.
    configure_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    from bot.run_goal import exit_code, run_goal

    try:
        finished = asyncio.run(
            run_goal(settings, goal, resume=resume, dry_run=dry_run, auto_approve=yes, console=out)
        )
    except ConfigError as error:
        for problem in error.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(CONFIG_EXIT) from None
    raise typer.Exit(exit_code(finished))


@app.command()
def demo(
    auto: Annotated[
        bool, typer.Option("--auto", help="Play it through with no input, approving everything.")
    ] = False,
) -> None:
    """Try airlock offline: the real bot, local Slack and Anthropic stand-ins, a scripted model."""
    configure_logging("WARNING")
    from bot.demo import run_demo

    raise typer.Exit(asyncio.run(run_demo(auto=auto, console=out)))


As = Annotated[
    str | None,
    typer.Option(
        "--as", help="Act as this identity (default: AIRLOCK_OPERATOR_ID or local:<login>)."
    ),
]


def _operate(
    env_file: Path, identity: str | None, work: Callable[[Operator], Awaitable[int]]
) -> None:
    settings = _settings(env_file)
    from bot.operate import operator

    async def main() -> int:
        async with operator(settings, identity) as acting:
            return await work(acting)

    raise typer.Exit(asyncio.run(main()))


def with_store(env_file: Path, work: Callable[[Store, Settings], Awaitable[int]]) -> None:
    """Run ``work`` on the configured store (closed afterwards); exit with what it returns."""
    settings = _settings(env_file)

    async def main() -> int:
        store = await open_settings_store(settings)
        try:
            return await work(store, settings)
        finally:
            await store.close()

    raise typer.Exit(asyncio.run(main()))


def _report(result: object) -> int:
    if isinstance(result, Refused):
        err.print(Text.assemble(("refused:", "red"), f" {visible(result.reason)}"))
        return 1
    if isinstance(result, list):
        out.print(f"{len(result)} run(s) killed")
    elif isinstance(result, Run):
        out.print(f"run {result.id}: {result.status.value}")
    else:
        approval = getattr(result, "approval", None)
        kind = getattr(result, "kind", "")
        if approval is not None:
            by = f" by {approval.decided_by}" if approval.decided_by else ""
            out.print(
                f"approval {approval.id}: {kind.replace('_', ' ')}, now {approval.status.value}{by}"
            )
    return 0


@app.command("approvals")
def approvals(env_file: EnvFile = Path(".env")) -> None:
    """List the approvals waiting for a decision."""

    async def work(acting: Operator) -> int:
        from bot.operate import approvals_table

        out.print(await approvals_table(acting.store))
        return 0

    _operate(env_file, None, work)


@app.command()
def approve(
    approval_id: Annotated[str, typer.Argument(help="The approval to approve.")],
    identity: As = None,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Approve a pending approval (through the same checks as a Slack click)."""

    async def work(acting: Operator) -> int:
        return _report(await acting.decide(approval_id, DecisionKind.APPROVE))

    _operate(env_file, identity, work)


@app.command()
def reject(
    approval_id: Annotated[str, typer.Argument(help="The approval to reject.")],
    reason: Annotated[str | None, typer.Option(help="Why; the agent is told.")] = None,
    identity: As = None,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Reject a pending approval; the reason goes back to the agent."""

    async def work(acting: Operator) -> int:
        return _report(await acting.decide(approval_id, DecisionKind.REJECT, reason))

    _operate(env_file, identity, work)


@app.command()
def kill(
    run_id: Annotated[str | None, typer.Argument(help="The run to kill.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Kill every unfinished run.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why; shown with the run.")] = None,
    identity: As = None,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Kill one run (admins, or whoever asked for it) or, with --all, every run (admins)."""
    if (run_id is None) != all_runs:
        err.print("airlock kill: give a RUN_ID or --all")
        raise typer.Exit(CONFIG_EXIT)

    async def work(acting: Operator) -> int:
        return _report(await acting.kill(run_id, reason))

    _operate(env_file, identity, work)


@app.command()
def retry(
    run_id: Annotated[str, typer.Argument(help="The failed, timed-out or budget-stopped run.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Approve every request without asking (scripts).")
    ] = False,
    identity: As = None,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Retry a run as its next attempt, here in the terminal; calls already made are kept."""

    async def work(acting: Operator) -> int:
        return _report(await acting.control.retry(run_id, by=acting.identity))

    settings = _settings(env_file)
    if settings.anthropic_api_key is None:
        err.print("[bold red]airlock retry: ANTHROPIC_API_KEY is not set[/]")
        raise typer.Exit(CONFIG_EXIT)
    try:
        _operate(env_file, identity, work)
    except typer.Exit as queued:
        if queued.exit_code != 0:
            raise
    configure_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    from bot.run_goal import exit_code, run_goal

    finished = asyncio.run(
        run_goal(settings, None, resume=run_id, dry_run=False, auto_approve=yes, console=out)
    )
    raise typer.Exit(exit_code(finished))


@app.command()
def halt(
    reason: Annotated[str | None, typer.Option(help="Why; shown to anyone refused.")] = None,
    identity: As = None,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Kill every run and refuse new ones until `airlock resume` (admins)."""

    async def work(acting: Operator) -> int:
        return _report(await acting.control.halt(by=acting.identity, reason=reason))

    _operate(env_file, identity, work)


@app.command()
def resume(identity: As = None, env_file: EnvFile = Path(".env")) -> None:
    """Accept new runs again after a halt (admins)."""

    async def work(acting: Operator) -> int:
        result = await acting.control.resume(by=acting.identity)
        if isinstance(result, Refused):
            return _report(result)
        out.print("airlock accepts new runs again")
        return 0

    _operate(env_file, identity, work)


@app.command()
def config(env_file: EnvFile = Path(".env")) -> None:
    """Show the settings in effect (secrets masked) and exit 2 if any is invalid."""
    settings = _settings(env_file)
    table = Table("setting", "value", title="airlock settings")
    for field in Settings.model_fields:
        value = getattr(settings, field)
        table.add_row(env_name(field), _shown(value))
    table.add_row("(store in use)", settings.effective_store_url)
    out.print(table)


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)  # SecretStr prints as '**********'


def main() -> None:
    """Console-script entry point."""
    app()


def _add_command_groups() -> None:
    from bot.audit_cli import audit_app
    from bot.memory_cli import memory_app

    app.add_typer(memory_app, name="memory")
    app.add_typer(audit_app, name="audit")


_add_command_groups()
