"""Finding a command's processes from outside: its pids inside the sandbox are not ours.

A sandboxed command runs in a PID namespace of its own, so ``$$`` and ``$!`` there are not
the pids this process sees. These helpers look processes up in /proc instead.
"""

from __future__ import annotations

import random
from pathlib import Path

__all__ = ["host_pid", "marked", "marker", "process_alive"]


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (dead, waiting to be reaped) does not count."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def host_pid(inner: int, workspace: Path) -> int:
    """The pid we see for the live process that has pid ``inner`` in its own namespace and
    works in ``workspace`` (a sandboxed command's ``$$``, or an unsandboxed one's)."""
    wanted = str(workspace.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cwd = str(Path((entry / "cwd").readlink()))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ids = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid"))
        if ids[-1] == str(inner) and cwd == wanted and process_alive(int(entry.name)):
            return int(entry.name)
    raise LookupError(f"no live process {inner} working in {workspace}")


def marker() -> str:
    """A number of seconds no other test sleeps: ``sleep <marker>`` names its process."""
    return f"{300 + random.randrange(10**6) / 10**6:.6f}"


def marked(seconds: str) -> list[int]:
    """The live processes running ``sleep <seconds>``."""
    wanted = f"sleep\0{seconds}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == wanted:
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return [pid for pid in found if process_alive(pid)]
