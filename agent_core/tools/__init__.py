"""Tools the agent can use: the Tool type, the registry, built-ins and MCP servers."""

from agent_core.tools.base import Tool, ToolContext, ToolHandler
from agent_core.tools.registry import ToolRegistry

__all__ = ["Tool", "ToolContext", "ToolHandler", "ToolRegistry"]
