"""What a tool is: name, description, JSON Schema, risk, and an async handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_core.channel import OperatorChannel
from agent_core.models import RiskLevel, Run
from agent_core.tools.processes import ProcessRecord

__all__ = ["Tool", "ToolContext", "ToolHandler"]


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
    """Told of a process the call started, as soon as it runs (kept in the audit trail, so
    a process that resumes the run after a crash can end what is left of it)."""


ToolHandler = Callable[[dict[str, Any], ToolContext], Awaitable[str]]
"""Runs one call with validated arguments and returns its output as text."""


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
    """The risk of any call; a call's risk is never lower."""
    handler: ToolHandler
    """The implementation."""
    risk_for: Callable[[dict[str, Any]], RiskLevel] | None = None
    """Escalates the risk of one call from its arguments (it can only raise it)."""
    preview: Callable[[dict[str, Any]], Awaitable[str]] | None = None
    """A dry run for approvers: what the call would do, without doing it."""
    timeout_seconds: float | None = None
    """Deadline of one call; None for the configured default."""
    idempotent: bool = False
    """Safe to run twice with the same arguments (after a crash, say)."""
    source: str = field(default="builtin")
    """Where it comes from: ``builtin`` or ``mcp:<server>``."""

    def risk_of(self, arguments: dict[str, Any]) -> RiskLevel:
        """The risk of a call with ``arguments``: the tool's, or higher if ``risk_for`` says so."""
        if self.risk_for is None:
            return self.risk
        return RiskLevel.highest([self.risk, self.risk_for(arguments)])

    def definition(self) -> dict[str, Any]:
        """The tool as the Messages API's ``tools`` parameter wants it."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }
