"""The conversation with a model, typed: messages, their content blocks, tool definitions.

The shapes are the Messages API's, cut to what airlock sends and receives (text, tool_use and
tool_result blocks), so a conversation is sent back turn after turn, and kept in a run's
checkpoint, as it is. :mod:`agent_core.llm.anthropic` converts to and from the SDK's types,
once each way; a block of another type from the API is an error there, not a dict here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict

from agent_core.toolcalls import ToolCall

__all__ = [
    "ContentBlock",
    "Message",
    "TextBlock",
    "ToolDefinition",
    "ToolResultBlock",
    "ToolUseBlock",
    "blocks_of",
    "call_of",
    "text_of",
    "tool_result",
    "tool_uses",
    "use_of",
]


class TextBlock(TypedDict):
    """Text, from the model or for it."""

    type: Literal["text"]
    text: str


class ToolUseBlock(TypedDict):
    """The model asks for a tool call; :func:`call_of` makes it the :class:`ToolCall` value."""

    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    """The arguments: whatever JSON object the tool's schema allows (checked before a call)."""


class ToolResultBlock(TypedDict):
    """The answer to one tool_use, in the next user turn."""

    type: Literal["tool_result"]
    tool_use_id: str
    content: str
    is_error: NotRequired[bool]


ContentBlock = Annotated[TextBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")]
"""One block of a message's content."""


class Message(TypedDict):
    """One turn of a conversation."""

    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class ToolDefinition(TypedDict):
    """A tool as the Messages API's ``tools`` parameter wants it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    """A JSON Schema object: arbitrary JSON by nature."""


def blocks_of(content: str | list[ContentBlock]) -> list[ContentBlock]:
    """A message's content as blocks (plain text is one text block)."""
    if isinstance(content, str):
        return [TextBlock(type="text", text=content)]
    return content


def text_of(content: str | list[ContentBlock]) -> str:
    """The text blocks of a message's content, joined."""
    return "".join(b["text"] for b in blocks_of(content) if b["type"] == "text")


def tool_uses(content: str | list[ContentBlock]) -> list[ToolUseBlock]:
    """The tool_use blocks of a message's content, in order."""
    return [b for b in blocks_of(content) if b["type"] == "tool_use"]


def call_of(block: ToolUseBlock) -> ToolCall:
    """The tool call a tool_use block asks for."""
    return ToolCall(id=block["id"], tool=block["name"], arguments=block["input"])


def use_of(call: ToolCall) -> ToolUseBlock:
    """The tool_use block that asks for ``call``."""
    return ToolUseBlock(type="tool_use", id=call.id, name=call.tool, input=call.arguments)


def tool_result(tool_use_id: str, content: str, *, error: bool = False) -> ToolResultBlock:
    """The answer to the tool_use ``tool_use_id``; ``is_error`` only when it failed."""
    block = ToolResultBlock(type="tool_result", tool_use_id=tool_use_id, content=content)
    if error:
        block["is_error"] = True
    return block
