"""What a tool call started, recorded so a process that resumes the run can end what is left.

A ``run_command`` call records the leader of its process group (its pid, its start time and
the machine) in the run's tool-call journal (and, for people, its audit trail) as soon as it
has started. If airlock dies during the call, the next process to resume the run looks the
record up, ends whatever of it still runs before the call is asked again, and tells the
approver whether the earlier copy was confirmed ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from agent_core.toolcalls import ProcessRecord

__all__ = ["end_leftover", "running_process"]

_PROC = Path("/proc")
_KILL_DEADLINE_SECONDS = 5.0


def running_process(pid: int, *, sandboxed: bool) -> ProcessRecord | None:
    """The record of the running process ``pid``; None when it is gone already."""
    entry = _stat(pid)
    if entry is None:
        return None
    return ProcessRecord(pid=pid, started=entry.started, boot_id=_boot_id(),
                         host=socket.gethostname(), sandboxed=sandboxed)  # fmt: skip


@dataclass(kw_only=True, frozen=True)
class _Entry:
    pid: int
    group: int
    started: int
    zombie: bool


async def end_leftover(record: ProcessRecord) -> bool:
    """End what is left of ``record``'s process group; whether nothing of it runs any more.

    False when that cannot be confirmed: it ran on another machine, it ran without the
    sandbox (a child that left the group cannot be found), or it would not die in time.
    """
    if record.host != socket.gethostname():
        return False
    if record.boot_id != _boot_id():
        return True  # the machine restarted since
    members = _members(record.pid)
    leader = next((m for m in members if m.pid == record.pid), None)
    if leader is not None and leader.started != record.started:
        # The pid was given to a new process: a pid is reused only once no process is
        # left in the group it led, so the group is gone.
        return record.sandboxed
    if members:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGKILL)
        if not await _gone(record.pid):
            return False
    return record.sandboxed


async def _gone(group: int) -> bool:
    deadline = time.monotonic() + _KILL_DEADLINE_SECONDS
    while _members(group):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _members(group: int) -> list[_Entry]:
    """The live (not zombie) processes of process group ``group``."""
    entries = (_stat(int(path.name)) for path in _PROC.iterdir() if path.name.isdigit())
    return [e for e in entries if e is not None and e.group == group and not e.zombie]


def _stat(pid: int) -> _Entry | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The name, in parentheses, may hold anything: the fields start after the last ")".
    fields = text.rsplit(")", 1)[1].split()
    return _Entry(pid=pid, group=int(fields[2]), started=int(fields[19]), zombie=fields[0] == "Z")


def _boot_id() -> str:
    return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
