"""``read_file`` and ``write_file``, confined to the workspace.

A path is resolved (symlinks followed) before it is used, and refused unless what it
resolves to lies inside the resolved workspace: ``../`` tricks, absolute paths and
symlinks pointing out all end up outside. The file is then opened with ``O_NOFOLLOW`` so
the last component cannot be swapped for a symlink between the check and the open.
"""

from __future__ import annotations

import asyncio
import difflib
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from agent_core.errors import ToolError, ToolRefused
from agent_core.models import RiskLevel
from agent_core.tools.base import Tool, ToolContext
from agent_core.tools.decorator import tool

__all__ = ["confine", "read_file_tool", "write_file_tool"]

_PathArg = Annotated[str, Field(min_length=1)]


def confine(tool_name: str, workspace: Path, path: str) -> Path:
    """``path`` (relative to ``workspace``) resolved; ToolRefused if it lands outside."""
    root = workspace.resolve()
    if "\x00" in path:
        raise ToolRefused(tool_name, "a path may not contain NUL")
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise ToolRefused(tool_name, f"{path!r} is outside the workspace")
    return resolved


def read_file_tool(*, max_bytes: int = 20_000) -> Tool:
    """The ``read_file`` tool; files longer than ``max_bytes`` come back truncated."""

    @tool(risk=RiskLevel.LOW, idempotent=True, grantable=True, reads_private_data=True)
    async def read_file(path: _PathArg, *, context: ToolContext) -> str:
        """Read a text file in the workspace.

        Args:
            path: The file, relative to the workspace folder.
        """
        data = await asyncio.to_thread(_read_inside, context.workspace, path, max_bytes + 1)
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
        diff = await asyncio.to_thread(_diff, workspace, path, content, max_bytes)
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
        await asyncio.to_thread(_write_inside, context.workspace, path, data)
        return f"wrote {len(data)} bytes to {path}"

    return write_file


def _read_inside(workspace: Path, path: str, limit: int) -> bytes:
    return _read("read_file", confine("read_file", workspace, path), limit)


def _write_inside(workspace: Path, path: str, data: bytes) -> None:
    _write(confine("write_file", workspace, path), data)


def _read(tool_name: str, target: Path, limit: int) -> bytes:
    try:
        descriptor = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ToolError(tool_name, f"no file {target.name!r} there") from None
    except IsADirectoryError:
        raise ToolError(tool_name, f"{target.name!r} is a folder") from None
    except OSError as error:
        raise ToolError(tool_name, f"cannot open {target.name!r}: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as file:
        return file.read(limit)


def _write(target: Path, data: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        descriptor = os.open(target, flags, 0o644)
    except OSError as error:
        raise ToolError("write_file", f"cannot write {target.name!r}: {error.strerror}") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _diff(workspace: Path, path: str, content: str, max_bytes: int) -> str:
    """A unified diff from the file as it is (or nothing) to ``content``."""
    target = confine("write_file", workspace, path)
    exists = target.is_file()
    current = _read("write_file", target, max_bytes + 1) if exists else b""
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
