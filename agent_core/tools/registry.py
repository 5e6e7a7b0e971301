"""The tools a run may use, by name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from agent_core.llm.messages import ToolDefinition
from agent_core.tools.base import Tool

__all__ = ["ToolRegistry"]


class ToolRegistry:
    """Named tools; MCP tools come and go with their servers, built-ins stay."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add ``tool``; a name may be registered only once."""
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is registered already")
        self._tools[tool.name] = tool

    def withdraw(self, source: str) -> list[str]:
        """Remove every tool from ``source`` (an MCP server that died); returns their names."""
        gone = [name for name, tool in self._tools.items() if tool.source == source]
        for name in gone:
            del self._tools[name]
        return gone

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, if any."""
        return self._tools.get(name)

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """The input JSON Schema of the tool ``name``; None if there is no such tool."""
        tool = self._tools.get(name)
        return None if tool is None else tool.input_schema

    @property
    def names(self) -> list[str]:
        """Every tool name, sorted."""
        return sorted(self._tools)

    def definitions(self) -> list[ToolDefinition]:
        """All tools as the Messages API's ``tools`` parameter, in a stable order."""
        return [self._tools[name].definition() for name in self.names]

    def __iter__(self) -> Iterator[Tool]:
        return iter([self._tools[name] for name in self.names])

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools
