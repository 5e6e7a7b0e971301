"""The tools airlock ships with: HTTP, shell commands, workspace files and asking a person."""

from __future__ import annotations

from agent_core.config import Settings
from agent_core.tools.base import Tool
from agent_core.tools.builtins.command import run_command_tool
from agent_core.tools.builtins.files import read_file_tool, write_file_tool
from agent_core.tools.builtins.http import http_request_tool
from agent_core.tools.builtins.human import ask_human_tool
from agent_core.tools.sandbox import CommandSandbox

__all__ = [
    "ask_human_tool",
    "builtin_tools",
    "http_request_tool",
    "read_file_tool",
    "run_command_tool",
    "write_file_tool",
]


def builtin_tools(settings: Settings, *, sandbox: CommandSandbox | None = None) -> list[Tool]:
    """Every built-in tool, configured from ``settings``; ``sandbox`` is the command sandbox
    (checked already, so that an unavailable one is described as such), else the settings'."""
    workspace = settings.effective_workspace_dir
    timeout = settings.tool_timeout_seconds
    max_output = settings.tool_output_max_chars
    return [
        http_request_tool(
            allow_hosts=settings.http_allow_hosts,
            timeout_seconds=timeout,
            max_body_bytes=max_output,
        ),
        run_command_tool(
            workspace=workspace,
            timeout_seconds=timeout,
            max_output_bytes=max_output,
            sandbox=sandbox or CommandSandbox.from_settings(settings),
        ),
        read_file_tool(max_bytes=max_output),
        write_file_tool(workspace=workspace, max_preview_chars=max_output),
        ask_human_tool(timeout_seconds=settings.approval_ttl_seconds),
    ]
