"""What a tool is: name, description, JSON Schema, risk, and an async handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_core.channel import OperatorChannel
from agent_core.llm.messages import ToolDefinition
from agent_core.models import RiskLevel, Run
from agent_core.toolcalls import ProcessRecord

__all__ = ["ArgumentsCheck", "Destinations", "RiskRule", "Tool", "ToolContext", "ToolHandler"]


@dataclass(kw_only=True)
class ToolContext:
    """What a tool call may use besides its arguments."""

    run: Run
    """The run the call belongs to."""
    workspace: Path
    """The folder file and command tools are confined to."""
    channel: OperatorChannel
    """Where people are, for tools such as ``ask_human``."""
    on_process: Callable[[ProcessRecord], Awaitable[None]] | None = None
    """Told of a process the call started, as soon as it runs (kept in the tool-call journal,
    so a process that resumes the run after a crash can end what is left of it)."""


ToolHandler = Callable[[dict[str, Any], ToolContext], Awaitable[str]]
"""Runs one call with validated arguments and returns its output as text."""

RiskRule = Callable[[dict[str, Any]], RiskLevel | None]
"""The risk one call's arguments imply by themselves, or None when they imply nothing more."""

ArgumentsCheck = Callable[[dict[str, Any]], bool]
"""A yes/no question about one call's arguments."""

Destinations = Callable[[dict[str, Any]], list[str]]
"""The hosts one call would send data to; ``"*"`` stands for a host that cannot be told."""


@dataclass(kw_only=True)
class Tool:
    """A capability the agent may use, with the risk that decides its approval gate."""

    name: str
    """Unique name, as the model sees it (``^[a-zA-Z0-9_-]{1,64}$``)."""
    description: str
    """What it does, for the planner and the executor model."""
    input_schema: dict[str, Any]
    """JSON Schema (an ``object``) that arguments are validated against before any call."""
    risk: RiskLevel
    """The base risk of every call (AIRLOCK_TOOL_RISKS may set it); a call's is never lower."""
    handler: ToolHandler
    """The implementation."""
    risk_for: RiskRule | None = None
    """What one call's arguments imply (``rm -rf`` is CRITICAL): it can only raise the risk
    above the base, never lower it."""
    grantable: bool = False
    """Whether approve-for-this-run may be offered: a person who saw one call could foresee
    what later calls of this tool do. Off unless the tool says so."""
    grantable_for: ArgumentsCheck | None = None
    """Narrows ``grantable`` to some calls (``http_request``: GET only); None: every call."""
    reads_private_data: bool = False
    """Its output may hold private data (workspace files, command output, memory): once a run
    has called it, outbound calls to hosts not allow-listed need a person."""
    destinations: Destinations | None = None
    """The hosts a call sends data to, for the egress rule; None for tools that send nothing."""
    preview: Callable[[dict[str, Any]], Awaitable[str]] | None = None
    """A dry run for approvers: what the call would do, without doing it."""
    timeout_seconds: float | None = None
    """Deadline of one call; None for the configured default."""
    idempotent: bool = False
    """Safe to run twice with the same arguments (after a crash, say)."""
    source: str = field(default="builtin")
    """Where it comes from: ``builtin`` or ``mcp:<server>``."""

    def definition(self) -> ToolDefinition:
        """The tool as the Messages API's ``tools`` parameter wants it."""
        return ToolDefinition(
            name=self.name, description=self.description, input_schema=self.input_schema
        )
