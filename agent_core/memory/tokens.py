"""How many input tokens a request would take: the API's own count, or a local estimate.

The estimate needs no network and is calibrated against the ``count_tokens`` endpoint in
``tests/agent/test_working_memory.py``; the API count is exact but costs a round trip.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Protocol, assert_never

from agent_core.errors import LLMError
from agent_core.llm import CountsTokens, LLMRequest, ModelTier
from agent_core.llm.messages import ContentBlock, Message, ToolDefinition, blocks_of

__all__ = ["ApiTokenCounter", "EstimatedTokenCounter", "TokenCounter", "estimate_text_tokens"]

logger = logging.getLogger(__name__)

Messages = list[Message]

CHARS_PER_TOKEN = 4.0
"""Characters of English text or JSON per token, roughly."""


class TokenCounter(Protocol):
    """Counts the input tokens of a Messages request (system, messages and tools)."""

    async def count(
        self, *, system: str, messages: Messages, tools: list[ToolDefinition] | None
    ) -> int:
        """Input tokens of a request with this system prompt, conversation and tools."""
        ...


def estimate_text_tokens(text: str, *, factor: float = 1.0) -> int:
    """Tokens of ``text`` at :data:`CHARS_PER_TOKEN`, times ``factor``, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN * factor)


@dataclass(kw_only=True, frozen=True)
class EstimatedTokenCounter:
    """A local estimate: characters the model reads over :data:`CHARS_PER_TOKEN`, plus framing.

    Text is counted as text, ``tool_use`` inputs and tool definitions as JSON, and
    ``tool_result`` content as its text; each block adds ``block_overhead`` tokens for the
    ids, names and structure around it.
    """

    factor: float = 1.05
    """Calibration of the character-based part, tuned against the ``count_tokens`` endpoint.

    JSON and fenced tool output cost more tokens per character than prose; 1.05 keeps every
    sample of the calibration test within a few per cent, erring on the high (safe) side.
    """
    block_overhead: int = 12
    """Tokens of framing per non-text block (type, ids, names)."""

    async def count(
        self, *, system: str, messages: Messages, tools: list[ToolDefinition] | None
    ) -> int:
        """The estimate; never fails, never waits."""
        return self.estimate(system=system, messages=messages, tools=tools)

    def estimate(
        self, *, system: str, messages: Messages, tools: list[ToolDefinition] | None
    ) -> int:
        """The estimate, synchronously."""
        texts = [system, *(_json(tool) for tool in tools or [])]
        framed = 0
        for message in messages:
            for block in blocks_of(message["content"]):
                texts.append(_readable(block))
                framed += block["type"] != "text"
        chars = sum(len(text) for text in texts)
        return math.ceil(chars / CHARS_PER_TOKEN * self.factor) + framed * self.block_overhead


@dataclass(kw_only=True)
class ApiTokenCounter:
    """The model API's own count (``count_tokens`` is free), with the estimate as fallback.

    After the first failed call it estimates for the rest of its life, so an endpoint that
    is missing (a gateway without it) or down does not add a failing round trip, with its
    retries, to every model turn. Build one per run so one bad moment costs one run.
    """

    llm: CountsTokens
    """The model client that counts."""
    tier: ModelTier = ModelTier.EXECUTOR
    """Whose tokenizer counts: the model the conversation is sent to."""
    fallback: EstimatedTokenCounter = field(default_factory=EstimatedTokenCounter)
    """Used once the API count has failed."""
    failed: bool = False
    """Whether an API count failed already (and was logged)."""

    async def count(
        self, *, system: str, messages: Messages, tools: list[ToolDefinition] | None
    ) -> int:
        """The API's count, or the estimate once the API has failed."""
        if not self.failed:
            try:
                request = LLMRequest(tier=self.tier, system=system, messages=messages, tools=tools)
                return await self.llm.count_tokens(request)
            except LLMError as error:
                self.failed = True
                logger.warning(
                    "count_tokens failed; estimating token counts from now on",
                    extra={"model": error.model, "reason": error.reason},
                )
        return self.fallback.estimate(system=system, messages=messages, tools=tools)


def _readable(block: ContentBlock) -> str:
    """The part of a block the model reads as tokens."""
    if block["type"] == "text":
        return block["text"]
    if block["type"] == "tool_use":
        return f"{block['id']}{block['name']}{_json(block['input'])}"
    if block["type"] == "tool_result":
        return f"{block['tool_use_id']}{block['content']}"
    assert_never(block["type"])


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
