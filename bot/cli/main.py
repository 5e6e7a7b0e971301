"""The ``airlock`` command line."""

from __future__ import annotations

import errno
import os
import traceback
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent_core import (
    DecisionKind,
    Refused,
    Run,
    Settings,
    configure_logging,
    env_name,
    redact,
    shown_url,
)
from bot.cli.startup import (
    CONFIG_EXIT,
    existing_store,
    fail,
    load,
    missing_lines,
    run_main,
    serve_problems,
    usable_folders,
)
from bot.slack.render import visible

if TYPE_CHECKING:
    from bot.cli.operate import Operator

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


def _version(shown: bool) -> None:
    if shown:
        try:
            number = package_version("airlock")
        except PackageNotFoundError:  # run from a checkout that was never installed
            number = "(not installed: `make install`)"
        out.print(f"airlock {number}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """A Slack chat-ops bot that puts a human in the loop of an AI agent."""


EnvFile = Annotated[
    Path,
    typer.Option("--env-file", help="Read settings from this file as well as the environment."),
]


def _settings(env_file: Path) -> Settings:
    return load(env_file)


Port = Annotated[
    int | None,
    typer.Option(min=1, max=65535, help="HTTP port (default: AIRLOCK_PORT or 3000)."),
]


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
    from bot.slack.server import serve as run_server

    port = port or settings.port
    _listening(port, lambda: run_main(run_server(settings, port=port, worker=not no_worker)))


@app.command()
def worker(port: Port = None, env_file: EnvFile = Path(".env")) -> None:
    """Work on queued runs (a Redis store), beside front ends started with `serve --no-worker`."""
    settings = _ready("worker", env_file, settings_missing=lambda s: s.missing_for_worker())
    from bot.cli.worker import work

    port = port or settings.port
    _listening(port, lambda: run_main(work(settings, port=port)))


def _listening(port: int, serve: Callable[[], None]) -> None:
    """``serve()``; a port it cannot listen on exits 2, naming the port."""
    try:
        serve()
    except OSError as error:
        if error.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        fail([f"--port / AIRLOCK_PORT {port}: cannot listen there ({os.strerror(error.errno)})"])


def _ready(
    command: str, env_file: Path, *, settings_missing: Callable[[Settings], list[str]]
) -> Settings:
    """Valid settings with nothing missing for ``command``, folders usable, logging
    configured; else exit 2."""
    settings = _settings(env_file)
    missing = settings_missing(settings)
    if missing:
        err.print(f"[bold red]airlock {command}: missing settings[/]")
        for line in missing_lines(missing):
            err.print(f"  {line}", markup=False, highlight=False)
        err.print(
            "Copy .env.example to .env and fill them in, or export them "
            "(README: 'Connect to a real Slack workspace')."
        )
        raise typer.Exit(CONFIG_EXIT)
    usable_folders(settings, workspace=True, memory=True)
    configure_logging(settings.log_level)
    return settings


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
    wait: Annotated[
        bool, typer.Option("--wait", help="With --resume: wait while another process holds it.")
    ] = False,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Run one goal in the terminal: plan, approvals at the keyboard, result."""
    if (goal is None) == (resume is None):
        fail(["airlock run: give a goal, or --resume RUN_ID (not both)"])
    if goal is not None and not goal.strip():
        fail(["airlock run: the goal is empty; say what the agent should achieve"])
    if resume is not None and not resume.strip():
        fail(["airlock run: --resume needs a run id (run_…)"])
    settings = _terminal_settings(env_file)
    from bot.cli.run_goal import exit_code, run_goal

    finished = run_main(
        run_goal(settings, goal, resume=resume, dry_run=dry_run, auto_approve=yes, console=out,
                 wait=wait)
    )  # fmt: skip
    raise typer.Exit(exit_code(finished))


def _terminal_settings(env_file: Path) -> Settings:
    """Settings for a run in the terminal (a model key, usable folders), quiet logging."""
    settings = _settings(env_file)
    if settings.anthropic_api_key is None:
        err.print("[bold red]airlock run: missing settings[/]")
        err.print("  ANTHROPIC_API_KEY is not set", markup=False, highlight=False)
        err.print("Copy .env.example to .env and fill it in, or export it.")
        raise typer.Exit(CONFIG_EXIT)
    usable_folders(settings, workspace=True, memory=True)
    # The terminal is for the run itself; routine INFO lines would only clutter it.
    configure_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    return settings


@app.command()
def demo(
    auto: Annotated[
        bool, typer.Option("--auto", help="Play it through with no input, approving everything.")
    ] = False,
) -> None:
    """Try airlock offline: the real bot, local Slack and Anthropic stand-ins, a scripted model."""
    configure_logging("WARNING")
    from bot.demo.main import run_demo

    raise typer.Exit(run_main(run_demo(auto=auto, console=out)))


As = Annotated[
    str | None,
    typer.Option(
        "--as", help="Act as this identity (default: AIRLOCK_OPERATOR_ID or local:<login>)."
    ),
]


def _operate(
    env_file: Path,
    identity: str | None,
    work: Callable[[Operator], Awaitable[int]],
    *,
    existing: bool = True,
) -> None:
    """Run ``work`` as an operator; ``existing``: only on a store that is there already."""
    settings = _settings(env_file)
    if existing:
        existing_store(settings)
    from bot.cli.operate import operator

    async def main() -> int:
        async with operator(settings, identity) as acting:
            return await work(acting)

    raise typer.Exit(run_main(main()))


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
        from bot.cli.operate import approvals_table

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
        return _report(await acting.retry(run_id))

    settings = _settings(env_file)
    if settings.anthropic_api_key is None:
        err.print("[bold red]airlock retry: ANTHROPIC_API_KEY is not set[/]")
        raise typer.Exit(CONFIG_EXIT)
    usable_folders(settings, workspace=True, memory=True)
    try:
        _operate(env_file, identity, work)
    except typer.Exit as queued:
        if queued.exit_code != 0:
            raise
    configure_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    from bot.cli.run_goal import exit_code, run_goal

    finished = run_main(
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
        return _report(await acting.halt(reason))

    # A halt may come first, before any run: it makes the store if need be.
    _operate(env_file, identity, work, existing=False)


@app.command()
def resume(identity: As = None, env_file: EnvFile = Path(".env")) -> None:
    """Accept new runs again after a halt (admins)."""

    async def work(acting: Operator) -> int:
        result = await acting.resume()
        if isinstance(result, Refused):
            return _report(result)
        out.print("airlock accepts new runs again")
        return 0

    _operate(env_file, identity, work, existing=False)


@app.command()
def config(env_file: EnvFile = Path(".env")) -> None:
    """Show the settings in effect (secrets masked); exit 2 if any is invalid, or if
    `airlock serve` would refuse to start with them (saying why)."""
    settings = _settings(env_file)
    table = Table("setting", "value", title="airlock settings")
    for field in Settings.model_fields:
        value = getattr(settings, field)
        table.add_row(env_name(field), _shown(value))
    table.add_row("(store in use)", shown_url(settings.effective_store_url))
    out.print(table)
    out.print(_tool_risks(settings))
    problems = serve_problems(settings)
    if problems:
        err.print("[bold red]airlock config: `airlock serve` would refuse to start:[/]")
        for problem in problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(CONFIG_EXIT)


def _tool_risks(settings: Settings) -> Table:
    """Each tool's base risk exactly as the gate and the planner apply it."""
    from agent_core import RiskPolicy, builtin_tools

    risk = RiskPolicy.from_settings(settings)
    table = Table("tool", "base risk", "a call is raised by", title="tool risks, as applied")
    tools = builtin_tools(settings)
    for tool in tools:
        raised = ["what its arguments do"] if tool.risk_for is not None else []
        raised += ["secrets in its arguments"]
        raised += ["sending data out"] if tool.destinations is not None else []
        table.add_row(tool.name, risk.base(tool).value, ", ".join(raised))
    for name in sorted(set(settings.tool_risks) - {tool.name for tool in tools}):
        table.add_row(name, settings.tool_risks[name].value, "(memory or MCP tool, as configured)")
    return table


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, str) and "://" in value:
        return shown_url(value)  # a URL may carry a password
    return redact(str(value))  # SecretStr prints as '**********'


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except Exception as error:  # the last resort: its text may quote anything, so it is masked
        trace = "".join(traceback.format_exception(error))
        err.print(redact(trace), markup=False, highlight=False)
        raise SystemExit(1) from None


def _add_command_groups() -> None:
    from bot.cli.audit import audit_app
    from bot.cli.memory import memory_app

    app.add_typer(memory_app, name="memory")
    app.add_typer(audit_app, name="audit")


_add_command_groups()
