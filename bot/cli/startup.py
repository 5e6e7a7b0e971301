"""Where a command that cannot start says why: one line per problem, exit code 2.

Every ``airlock`` command loads its settings with :func:`load` and runs its work with
:func:`run_main`. Whatever turns out wrong on the way in (a setting that does not parse, a
store that cannot be reached, a folder that cannot be written, an argument that names
nothing) is a :class:`ConfigError` by the time it gets here, and leaves as lines that name
the setting or argument to fix, never as a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar

import typer
from rich.console import Console

from agent_core import Airlock, ConfigError, Settings, load_settings, sqlite_path

__all__ = [
    "CONFIG_EXIT",
    "check_folders",
    "check_store_exists",
    "existing_store",
    "fail",
    "load",
    "missing_lines",
    "run_main",
    "serve_problems",
    "usable_folders",
    "with_store",
]

CONFIG_EXIT = 2
"""The exit code of a command that could not start because of what it was given."""

T = TypeVar("T")
_DEFAULT_ENV_FILE = Path(".env")

# soft_wrap: each problem stays on one line, however narrow the terminal.
err = Console(stderr=True, soft_wrap=True)


def load(env_file: Path) -> Settings:
    """The settings, or exit 2 listing every invalid one.

    A missing ``.env`` is fine (the environment may hold everything); a missing file given
    with ``--env-file`` is a mistake.
    """
    try:
        if env_file != _DEFAULT_ENV_FILE and not env_file.exists():
            raise ConfigError([f"--env-file {env_file}: there is no such file"])
        return load_settings(env_file)
    except ConfigError as error:
        err.print("[bold red]airlock: invalid settings[/]")
        for problem in error.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        err.print("See .env.example for every setting and its format.")
        raise typer.Exit(CONFIG_EXIT) from None


def fail(problems: list[str]) -> NoReturn:
    """Say each problem on a line of its own (``airlock: …`` unless it names its command);
    exit 2."""
    for problem in problems:
        line = problem if problem.startswith("airlock ") else f"airlock: {problem}"
        err.print(line, markup=False, highlight=False)
    raise typer.Exit(CONFIG_EXIT)


def run_main(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end; a start-up problem exits 2 through :func:`fail`."""
    try:
        return asyncio.run(main)
    except ConfigError as error:
        fail(error.problems)


_HOW_TO_SET = {
    # Missing only when SLACK_APP_TOKEN is missing too: either one will do.
    "SLACK_SIGNING_SECRET": "SLACK_APP_TOKEN or SLACK_SIGNING_SECRET is not set: `SLACK_APP_TOKEN`"
    " for Socket Mode (recommended) or `SLACK_SIGNING_SECRET` for HTTP",
    "AIRLOCK_AUDIT_KEY": "AIRLOCK_AUDIT_KEY is not set: `airlock audit keygen` makes one (keep it"
    " with your secrets, not in the data folder)",
}


def missing_lines(missing: list[str]) -> list[str]:
    """A line for each setting in ``missing`` (from ``Settings.missing_for_*``): what it is and,
    where there is a choice or a tool, how to get it."""
    return [_HOW_TO_SET.get(name, f"{name} is not set") for name in missing]


def serve_problems(settings: Settings) -> list[str]:
    """Why ``airlock serve`` would refuse to start with ``settings``, found without starting
    it (no store opened, no folder made): one line each; empty when nothing is wrong."""
    from bot.slack.metrics_http import port_problem

    problems = missing_lines(settings.missing_for_serve())
    if (clash := port_problem(settings, settings.port)) is not None:
        problems.append(clash)
    try:
        check_folders(settings, workspace=True, memory=True, make=False)
    except ConfigError as error:
        problems += error.problems
    return problems


def check_store_exists(settings: Settings) -> None:
    """ConfigError when the SQLite store a command that only works on existing data would
    open is not there: opening it would make an empty one, most likely in the wrong folder."""
    path = sqlite_path(settings.effective_store_url)
    if path is None or path.exists() or any(parent.is_file() for parent in path.parents):
        return  # Redis; there; or a file in the way, which opening it names
    setting = "AIRLOCK_STORE_URL" if settings.store_url else "AIRLOCK_DATA_DIR"
    raise ConfigError([
        f"{setting}: there is no store at {path} (`airlock serve` or `airlock run` makes it);"
        " run this where your .env is, or give --env-file or AIRLOCK_DATA_DIR"
    ])  # fmt: skip


def check_folders(
    settings: Settings, *, workspace: bool = False, memory: bool = False, make: bool = True
) -> None:
    """Make sure the folders a command will write to can be written (made if missing, unless
    ``make`` is False: then only checked).

    ConfigError names the setting behind each one that cannot: a path that is a file, lies
    under a file, or may not be written to.
    """
    unusable = _unusable if make else _unusable_as_is
    wanted: list[tuple[Path, str]] = []
    if workspace:
        setting = "AIRLOCK_WORKSPACE_DIR" if settings.workspace_dir else "AIRLOCK_DATA_DIR"
        wanted.append((settings.effective_workspace_dir, setting))
    if memory and settings.memory_enabled:
        wanted.append((settings.data_dir / "memory", "AIRLOCK_DATA_DIR"))
    # One problem for the data folder, rather than one for each folder made in it.
    in_data = any(folder.is_relative_to(settings.data_dir) for folder, _ in wanted)
    if in_data and (reason := unusable(settings.data_dir)) is not None:
        raise ConfigError([_problem("AIRLOCK_DATA_DIR", settings.data_dir, reason)])
    problems = [
        _problem(setting, folder, reason)
        for folder, setting in wanted
        if (reason := unusable(folder)) is not None
    ]
    if problems:
        raise ConfigError(problems)


def _problem(setting: str, folder: Path, reason: str) -> str:
    return f"{setting}: {folder} cannot hold airlock's files ({reason})"


def _unusable(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (made if missing); None when they can."""
    if folder.exists() and not folder.is_dir():
        return "it is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".airlock-probe-"):
            return None
    except OSError as error:
        return error.strerror or str(error)


def _unusable_as_is(folder: Path) -> str | None:
    """Why ``folder`` could not be made or written in, judged without touching anything."""
    existing = next(path for path in (folder, *folder.resolve().parents) if path.exists())
    if not existing.is_dir():
        return "it is a file, not a folder" if existing == folder else f"{existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return os.strerror(errno.EACCES)
    return None


def usable_folders(settings: Settings, *, workspace: bool = False, memory: bool = False) -> None:
    """Exit 2 naming each folder the command needs that cannot be used."""
    try:
        check_folders(settings, workspace=workspace, memory=memory)
    except ConfigError as error:
        fail(error.problems)


def existing_store(settings: Settings) -> None:
    """Exit 2 naming the path when the store is a SQLite file that is not there: a command
    that works on what is stored would only make an empty one, likely in the wrong folder."""
    try:
        check_store_exists(settings)
    except ConfigError as error:
        fail(error.problems)


def with_store(
    env_file: Path,
    work: Callable[[Airlock], Awaitable[int]],
    *,
    memory: bool = False,
    audit: Literal["write", "read"] = "write",
) -> None:
    """Run ``work`` on the airlock of the configured store (closed afterwards); exit with what
    it returns.

    ``memory``: ``work`` writes memory indexes, so their folder must be usable.
    ``audit="read"`` for commands that never write the audit trail (see
    :meth:`Airlock.from_settings`); they only read what is stored, so a store that is not
    there is an error, not one to make.
    """
    settings = load(env_file)
    if audit == "read":
        existing_store(settings)
    usable_folders(settings, memory=memory)

    async def main() -> int:
        async with Airlock.from_settings(settings, audit=audit) as airlock:
            return await work(airlock)

    raise typer.Exit(run_main(main()))
