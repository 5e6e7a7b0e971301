"""``read_file`` and ``write_file``, confined to the workspace.

Paths are walked name by name from the workspace folder's descriptor (see
:mod:`agent_core.tools.workspace_fs`): ``../`` tricks, absolute paths and symlinks that
lead outside are refused, and so is anything swapped in under the walk. Only regular files
with one name are read or written, and the I/O runs in threads of its own, so a call that
hangs never holds up anything but file tools.
"""

from __future__ import annotations

import asyncio
import difflib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from agent_core.errors import ToolError, ToolRefused
from agent_core.models import RiskLevel
from agent_core.tools._file_threads import in_file_thread
from agent_core.tools.base import Tool, ToolContext
from agent_core.tools.decorator import tool
from agent_core.tools.workspace_fs import WorkspaceFiles

__all__ = ["read_file_tool", "write_file_tool"]

_PathArg = Annotated[str, Field(min_length=1)]
_PREVIEW_SECONDS = 10.0
"""A diff preview that takes longer (a hung mount) is given up; the approver is told."""


def read_file_tool(*, max_bytes: int = 20_000) -> Tool:
    """The ``read_file`` tool; files longer than ``max_bytes`` come back truncated."""

    @tool(risk=RiskLevel.LOW, idempotent=True, grantable=True, reads_private_data=True)
    async def read_file(path: _PathArg, *, context: ToolContext) -> str:
        """Read a text file in the workspace.

        Args:
            path: The file, relative to the workspace folder.
        """
        files = WorkspaceFiles("read_file", context.workspace)
        data = await in_file_thread(files.read, path, max_bytes + 1)
        text = data[:max_bytes].decode("utf-8", "replace")
        if len(data) > max_bytes:
            text += f"\n[file truncated after {max_bytes} bytes]"
        return text

    return read_file


def write_file_tool(
    *, workspace: Path, max_bytes: int = 1_000_000, max_preview_chars: int = 20_000
) -> Tool:
    """The ``write_file`` tool; ``workspace`` is what previews diff against."""

    async def preview(arguments: dict[str, Any]) -> str:
        path, content = str(arguments.get("path", "")), str(arguments.get("content", ""))
        try:
            async with asyncio.timeout(_PREVIEW_SECONDS):
                diff = await in_file_thread(_diff, workspace, path, content, max_bytes)
        except TimeoutError:
            raise ToolError(
                "write_file", f"reading {path!r} took over {_PREVIEW_SECONDS:g} s"
            ) from None
        if len(diff) > max_preview_chars:
            return diff[:max_preview_chars] + f"\n[diff truncated after {max_preview_chars} chars]"
        return diff

    # Not grantable: one approved write says nothing of what the next one writes.
    @tool(risk=RiskLevel.HIGH, idempotent=True, preview=preview)
    async def write_file(path: _PathArg, content: str, *, context: ToolContext) -> str:
        """Create or replace a text file in the workspace, creating folders as needed.

        Args:
            path: The file, relative to the workspace folder.
            content: The whole new content of the file (UTF-8 text).
        """
        data = content.encode()
        if len(data) > max_bytes:
            raise ToolRefused("write_file", f"{len(data)} bytes is over the {max_bytes} limit")
        await in_file_thread(WorkspaceFiles("write_file", context.workspace).write, path, data)
        return f"wrote {len(data)} bytes to {path}"

    return write_file


def _diff(workspace: Path, path: str, content: str, max_bytes: int) -> str:
    """A unified diff from the file as it is (or nothing) to ``content``."""
    found = WorkspaceFiles("write_file", workspace).read_current(path, max_bytes + 1)
    exists = found is not None
    current = found or b""
    if len(current) > max_bytes:
        return f"replaces {path}, a file of more than {max_bytes} bytes, with new content"
    before = current.decode("utf-8", "replace")
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        content.splitlines(keepends=True),
        fromfile=f"a/{path}" if exists else "/dev/null",
        tofile=f"b/{path}",
    )
    diff = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return diff or f"{path}: no change"
