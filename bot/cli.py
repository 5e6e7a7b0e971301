"""The ``airlock`` command line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent_core.config import Settings, env_name, load_settings
from agent_core.errors import ConfigError
from agent_core.logs import configure_logging

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
        return load_settings(env_file)
    except ConfigError as error:
        err.print("[bold red]airlock: invalid settings[/]")
        for problem in error.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        err.print("See .env.example for every setting and its format.")
        raise typer.Exit(CONFIG_EXIT) from None


@app.command()
def serve(
    port: Annotated[
        int | None, typer.Option(help="HTTP port (default: AIRLOCK_PORT or 3000).")
    ] = None,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Run the Slack bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP on /slack/events)."""
    settings = _settings(env_file)
    missing = settings.missing_for_serve()
    if missing:
        err.print("[bold red]airlock serve: missing settings[/]")
        for name in missing:
            err.print(f"  {name} is not set", markup=False, highlight=False)
        err.print(
            "Copy .env.example to .env and fill them in, or export them "
            "(README: 'Connect to a real Slack workspace')."
        )
        raise typer.Exit(CONFIG_EXIT)
    configure_logging(settings.log_level)
    from bot.server import serve as run_server

    asyncio.run(run_server(settings, port=port or settings.port))


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
