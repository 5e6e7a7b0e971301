"""``run_command``: a shell command in the workspace, in a sandbox and a process group.

The sandbox (:mod:`agent_core.tools.sandbox`) hides airlock's process, data and settings
from the command and ends everything the command started when its shell exits. The group is
what gets stopped: on a timeout, on cancellation (a killed run) and when the shell exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from agent_core.errors import ToolError, ToolTimeout
from agent_core.models import RiskLevel
from agent_core.toolcalls import ProcessRecord
from agent_core.tools.base import Tool, ToolContext
from agent_core.tools.builtins.shell_risk import (
    DESTRUCTIVE_PATTERNS,
    command_destinations,
    command_risk,
)
from agent_core.tools.decorator import tool
from agent_core.tools.processes import running_process
from agent_core.tools.sandbox import SETUP_FAILED, CommandSandbox, failure

__all__ = ["DESTRUCTIVE_PATTERNS", "command_risk", "run_command_tool"]

logger = logging.getLogger(__name__)

_NAME = "run_command"


_WHY = "the sandbox that commands must run in cannot start here"


def run_command_tool(
    *,
    workspace: Path,
    timeout_seconds: float = 60.0,
    max_output_bytes: int = 20_000,
    kill_grace_seconds: float = 2.0,
    sandbox: CommandSandbox | None = None,
) -> Tool:
    """The ``run_command`` tool; ``workspace`` is shown in previews, calls use the context's.

    ``sandbox`` (default: a sandbox that hides nothing beyond airlock's process) says how
    the shell starts; when it is known not to start here, the tool says it is unavailable.
    """
    max_timeout = timeout_seconds
    how = sandbox or CommandSandbox()

    async def preview(arguments: dict[str, Any]) -> str:
        limit = _deadline(arguments.get("timeout_seconds"), max_timeout)
        return f"$ {arguments.get('command', '')}\n(in {workspace}, timeout {limit:g} s)"

    # Not grantable: one approved command says nothing of the next. Its output may hold
    # anything the machine holds, so it reads private data.
    @tool(
        risk=RiskLevel.HIGH,
        risk_for=command_risk,
        reads_private_data=True,
        destinations=command_destinations,
        preview=preview,
        # Our own deadline, below, fires first; this one only backs it up.
        timeout_seconds=timeout_seconds + kill_grace_seconds + 1,
    )
    async def run_command(
        command: Annotated[str, Field(min_length=1)],
        timeout_seconds: Annotated[float, Field(gt=0)] | None = None,
        *,
        context: ToolContext,
    ) -> str:
        """Run a shell command in the workspace folder and return its output and exit code.

        Args:
            command: The command line, run by /bin/sh; stdout and stderr are merged.
            timeout_seconds: Stop it after this many seconds (capped by the configured limit).
        """
        status = await how.check()
        if status.kind == "unavailable":
            raise ToolError(_NAME, f"unavailable on this machine, nothing was run: {_WHY}"
                                   f" ({status.reason})")  # fmt: skip
        run = _Run(argv=how.argv(command, context.workspace), cwd=context.workspace,
                   env=how.environment(), grace=kill_grace_seconds,
                   sandboxed=status.kind == "ready", on_process=context.on_process)  # fmt: skip
        code, output = await run.execute(_deadline(timeout_seconds, max_timeout), max_output_bytes)
        if run.sandboxed and code == SETUP_FAILED and output.startswith(b"airlock sandbox: "):
            raise ToolError(_NAME, f"the command sandbox failed: {failure(code, output)}")
        return _render(code, output, max_output_bytes)

    if how.status is not None and how.status.kind == "unavailable":
        run_command.description = (f"UNAVAILABLE on this machine (every call is refused):"
                                   f" {_WHY}. {run_command.description}")  # fmt: skip
    return run_command


def _deadline(asked: object, configured: float) -> float:
    if isinstance(asked, int | float) and asked > 0:
        return min(float(asked), configured)
    return configured


def _render(code: int, output: bytes, limit: int) -> str:
    text = output[:limit].decode("utf-8", "replace")
    if len(output) > limit:
        text += f"\n[output truncated after {limit} bytes]"
    return f"{text}\n[exit code {code}]" if text else f"[exit code {code}]"


class _Output(asyncio.SubprocessProtocol):
    """Keeps the first ``limit`` bytes of output; tells when the shell exits and the pipes close.

    ``Process.wait()`` would not do: it also waits for the pipes, which a background child
    can hold open long after the shell is gone.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += data[:room]

    def process_exited(self) -> None:
        self.exited.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


@dataclass(kw_only=True)
class _Run:
    """One command in its own process group, stopped as a group."""

    argv: list[str]
    """The program that runs the command: the sandbox's launcher, or /bin/sh."""
    cwd: Path
    """Where it runs."""
    env: dict[str, str]
    """Its whole environment."""
    grace: float
    """Seconds between SIGTERM and SIGKILL, and for the pipes to close after."""
    sandboxed: bool
    """Whether ``argv`` starts the sandbox."""
    on_process: Callable[[ProcessRecord], Awaitable[None]] | None = None
    """Told what was started, as soon as it runs (the run's tool-call journal keeps it)."""

    async def execute(self, timeout_seconds: float, max_bytes: int) -> tuple[int, bytes]:
        """Run to the end; the exit code and (up to ``max_bytes`` + 1 of) the output."""
        try:
            # Started from the event loop's thread: the sandbox ties its life to that
            # thread (PR_SET_PDEATHSIG), which lives as long as airlock does.
            transport, output = await asyncio.get_running_loop().subprocess_exec(
                lambda: _Output(max_bytes + 1),
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:  # no workspace folder, or no shell
            raise ToolError(_NAME, f"cannot start in {self.cwd}: {error.strerror}") from None
        try:
            await self._record(transport.get_pid())
            if not await _within(output.exited, timeout_seconds):
                raise ToolTimeout(_NAME, timeout_seconds)
        finally:
            # After the shell exits too: what it left running in the background goes as well.
            await self._stop_shielded(transport, output)
        code = transport.get_returncode()
        return -1 if code is None else code, bytes(output.data)

    async def _record(self, pid: int) -> None:
        record = running_process(pid, sandboxed=self.sandboxed)
        if record is not None and self.on_process is not None:
            await self.on_process(record)

    async def _stop_shielded(self, transport: asyncio.SubprocessTransport, output: _Output) -> None:
        stopping = asyncio.ensure_future(self._stop(transport, output))
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            # Cancelled again while stopping: no time for grace, but never leave it running.
            _signal_group(transport.get_pid(), signal.SIGKILL)
            transport.close()
            raise

    async def _stop(self, transport: asyncio.SubprocessTransport, output: _Output) -> None:
        """SIGTERM to the group, SIGKILL after the grace; the shell reaped, the pipes closed."""
        group = transport.get_pid()
        _signal_group(group, signal.SIGTERM)
        await _within(output.exited, self.grace)
        _signal_group(group, signal.SIGKILL)
        if not await _within(output.closed, self.grace):
            logger.warning("run_command: a process outside the group holds the output open")
        transport.close()


async def _within(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` is set within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    # Gone already, or (a setuid member) beyond our reach: nothing more we could do.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
