"""The LLM seam: what the planner and executor ask of a model, and what they get back.

Messages and content blocks are the Messages API's shapes, typed in
:mod:`agent_core.llm.messages`, since that is what is sent back to the model turn after turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from agent_core.llm.messages import ContentBlock, Message, ToolDefinition, ToolUseBlock, text_of
from agent_core.llm.messages import tool_uses as tool_uses_of

if TYPE_CHECKING:  # the SDK is slow to import; its TypedDict is the API's own shape
    from anthropic.types import ToolChoiceParam

__all__ = [
    "LLM",
    "CountsTokens",
    "LLMRequest",
    "LLMResponse",
    "ModelTier",
    "NamesModels",
    "Usage",
]


class ModelTier(StrEnum):
    """Which model of the three configured ones a call uses."""

    PLANNER = "planner"
    EXECUTOR = "executor"
    FAST = "fast"


@dataclass(kw_only=True, frozen=True)
class Usage:
    """Tokens one call used, by kind, and what they cost."""

    input_tokens: int = 0
    """Uncached input tokens."""
    output_tokens: int = 0
    """Generated tokens."""
    cache_write_tokens: int = 0
    """Input tokens written to the prompt cache (billed at 1.25x input by default)."""
    cache_read_tokens: int = 0
    """Input tokens read from the prompt cache (billed at 0.1x input by default)."""
    cost_usd: float = 0.0
    """Price of the call from the configured price table."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )

    @property
    def total_tokens(self) -> int:
        """Every token of the call, cached or not."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_write_tokens
            + self.cache_read_tokens
        )


@dataclass(kw_only=True, frozen=True)
class LLMRequest:
    """One model call, whole: what every caller builds and every middleware sees.

    The one place a call's parameters are declared. A middleware that changes a request
    passes on a new one (``dataclasses.replace``); the lists and dicts are the caller's
    and are never changed in place. Messages and tools use the Messages API shapes.
    """

    tier: ModelTier
    """Which configured model answers."""
    system: str
    """The system prompt (cached with the tools by the implementation)."""
    messages: list[Message]
    """The conversation so far, oldest first; the last one is the turn's new input."""
    tools: list[ToolDefinition] | None = None
    """Tool definitions the model may call; none when ``None`` or empty."""
    tool_choice: ToolChoiceParam | None = None
    """How the model must use the tools (``{"type": "tool", "name": ...}``); the API's
    default when ``None``."""
    max_tokens: int | None = None
    """Most tokens the turn may generate; the model client's configured default when ``None``."""


@dataclass(kw_only=True, frozen=True)
class LLMResponse:
    """One model turn."""

    content: list[ContentBlock]
    """The assistant's content blocks (``text``, ``tool_use``)."""
    stop_reason: str
    """Why the turn ended: end_turn, tool_use, max_tokens, stop_sequence, refusal, pause_turn."""
    model: str
    """The model that answered (the fallback one if the primary stayed overloaded)."""
    usage: Usage = field(default_factory=Usage)
    """Tokens and cost of this call."""
    id: str | None = None
    """The API's id of the message (``msg_...``), when it gave one."""

    @property
    def text(self) -> str:
        """The text blocks joined."""
        return text_of(self.content)

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        """The ``tool_use`` blocks, in order."""
        return tool_uses_of(self.content)


class LLM(Protocol):
    """A model the agent can call; :class:`~agent_core.llm.anthropic.AnthropicLLM` in production."""

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """One Messages API call.

        ``system`` and ``tools`` are marked for prompt caching by the implementation.
        Raises :class:`~agent_core.errors.LLMError` when the call fails for good.
        """
        ...


@runtime_checkable
class CountsTokens(Protocol):
    """A model client that can count a request's input tokens without running it."""

    async def count_tokens(self, request: LLMRequest) -> int:
        """Input tokens of ``request`` on its tier's model (``tool_choice`` and ``max_tokens``
        count nothing); raises :class:`LLMError` on failure."""
        ...


@runtime_checkable
class NamesModels(Protocol):
    """A model client that can say which model a tier's calls go to (for traces and metrics)."""

    def model_for(self, tier: ModelTier) -> str:
        """The model ``tier``'s calls ask for first (a fallback may answer instead)."""
        ...
