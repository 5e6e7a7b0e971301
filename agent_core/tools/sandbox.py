"""The sandbox ``run_command`` starts its shell in: what it hides, and whether it can start here.

The sandbox itself is built by ``_sandbox_init.py`` (Linux namespaces, no capabilities; see
its docstring). This side decides what it hides (the data folder, the settings files, the
SQLite store, the MCP configuration), the environment a command gets (an allow-list, never
airlock's own), and checks once that the sandbox starts on this machine. Where it does not,
``run_command`` refuses every call, unless the operator turned the sandbox off.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from agent_core.tools._sandbox_init import SETUP_FAILED

if TYPE_CHECKING:
    from agent_core.config import Settings

__all__ = [
    "BASE_ENVIRONMENT",
    "HELPER",
    "SETUP_FAILED",
    "CommandSandbox",
    "SandboxStatus",
    "command_environment",
    "failure",
    "hidden_paths",
]

HELPER = Path(__file__).with_name("_sandbox_init.py")
"""The sandbox's own code, run in a fresh interpreter for every command."""
BASE_ENVIRONMENT = ("PATH", "HOME", "LANG", "TERM", "TZ")
"""What every command gets from airlock's environment (and every ``LC_*``), when set."""
_BOOT = (
    "import sys; sys.path[:0] = sys.argv[1:2]; from _sandbox_init import main; main(sys.argv[1:])"
)
"""Imported, not run as a script: a script is compiled on every start, a module is cached."""
_PROBE_SECONDS = 30.0
_SQLITE_FILES = ("", "-wal", "-shm", "-journal")


@dataclass(kw_only=True, frozen=True)
class SandboxStatus:
    """Whether commands can run: ``ready`` (sandboxed), ``off`` (unsandboxed, by choice) or
    ``unavailable`` (refused: the sandbox cannot start here, and ``reason`` says why)."""

    kind: Literal["ready", "off", "unavailable"]
    reason: str = ""

    def startup_line(self) -> str | None:
        """The one line an entry point shows at start, or None when all is well."""
        if self.kind == "unavailable":
            return (f"run_command is unavailable: the command sandbox cannot start here "
                    f"({self.reason}); set AIRLOCK_COMMAND_SANDBOX=off to run commands "
                    "without it")  # fmt: skip
        if self.kind == "off":
            return ("WARNING: run_command runs commands WITHOUT a sandbox "
                    "(AIRLOCK_COMMAND_SANDBOX=off): a command can read airlock's data folder, "
                    "settings and store, and what it starts may outlive its call")  # fmt: skip
        return None


def command_environment(allow: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` a command may see: the base set, ``LC_*`` and ``allow``.

    Built from an allow-list, so that nothing of airlock's (its settings, tokens, keys, a
    database URL) reaches a command the model chose, whatever its name.
    """
    wanted = {*BASE_ENVIRONMENT, *allow}
    return {name: value for name, value in environ.items()
            if name in wanted or name.startswith("LC_")}  # fmt: skip


@dataclass(kw_only=True)
class CommandSandbox:
    """How ``run_command`` starts its shell; built once from the settings."""

    mode: Literal["required", "off"] = "required"
    hidden: tuple[Path, ...] = ()
    """Paths no command may read (covered inside the sandbox), absolute."""
    env_allow: tuple[str, ...] = ()
    """Variables passed on besides :data:`BASE_ENVIRONMENT`."""
    python: Path = field(default_factory=lambda: Path(sys.executable))
    """The interpreter that runs the sandbox helper."""
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    """Where allowed variables take their values: airlock's environment at start."""
    status: SandboxStatus | None = None
    """Known once :meth:`check` ran (``off`` at once when the sandbox is turned off)."""

    def __post_init__(self) -> None:
        if self.mode == "off":
            self.status = SandboxStatus(kind="off")

    @classmethod
    def from_settings(cls, settings: Settings) -> CommandSandbox:
        """The sandbox the settings describe, hiding what holds airlock's state and secrets."""
        return cls(
            mode=settings.command_sandbox,
            hidden=tuple(_resolved(hidden_paths(settings))),
            env_allow=tuple(settings.command_env_allow),
            python=settings.command_sandbox_python or Path(sys.executable),
        )

    def environment(self) -> dict[str, str]:
        """What a command's environment holds."""
        return command_environment(self.env_allow, self.environ)

    def argv(self, command: str, workspace: Path) -> list[str]:
        """The program and arguments that run ``command`` in ``workspace``."""
        if self.mode == "off":
            return ["/bin/sh", "-c", command]
        # -I -S: no PYTHON* variables, no site-packages: only the standard library is used.
        return [str(self.python), "-I", "-S", "-c", _BOOT, str(HELPER.parent), str(os.getpid()),
                str(workspace.resolve()), command, *map(str, self.hidden)]  # fmt: skip

    async def check(self) -> SandboxStatus:
        """Whether commands can run here; the sandbox is started once, with ``true``, in an
        empty folder of its own."""
        if self.status is None:
            with tempfile.TemporaryDirectory(prefix="airlock-sandbox-") as folder:
                self.status = await self._probe(Path(folder))
        return self.status

    async def _probe(self, workspace: Path) -> SandboxStatus:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv("true", workspace), cwd=workspace, env=self.environment(),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            return SandboxStatus(kind="unavailable", reason=f"{self.python}: {error.strerror}")
        try:
            async with asyncio.timeout(_PROBE_SECONDS):
                output, _ = await process.communicate()
        except TimeoutError:
            return SandboxStatus(kind="unavailable", reason="it did not start in time")
        finally:
            if process.returncode is None:  # timed out, or the caller was cancelled
                process.kill()
                await asyncio.shield(process.wait())
        if process.returncode == 0:
            return SandboxStatus(kind="ready")
        return SandboxStatus(kind="unavailable", reason=failure(process.returncode, output))


def failure(code: int | None, output: bytes) -> str:
    """Why the sandbox did not start, from its exit status and output."""
    text = output.decode("utf-8", "replace").strip()
    first = text.splitlines()[0] if text else ""
    if first.startswith("airlock sandbox: "):
        return first.removeprefix("airlock sandbox: ")
    return f"exit status {code}" + (f": {first[:200]}" if first else "")


def hidden_paths(settings: Settings) -> list[Path]:
    """What holds airlock's state or secrets: the data folder (store, memory indexes), the
    settings files, the SQLite store wherever it is, and the MCP configuration (which may
    hold the servers' tokens)."""
    paths = [settings.data_dir, Path(".env")]
    if settings.settings_file is not None:
        paths.append(settings.settings_file)
    url = settings.effective_store_url
    if url.startswith("sqlite:///"):
        store = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
        paths += [store.with_name(store.name + suffix) for suffix in _SQLITE_FILES]
    if settings.mcp_config is not None:
        paths.append(settings.mcp_config)
    return paths


def _resolved(paths: Iterable[Path]) -> list[Path]:
    return sorted({path.expanduser().resolve() for path in paths})
