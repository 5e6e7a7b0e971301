"""The model layer: the LLM protocol every caller uses, and what wraps a model's calls.

``base`` holds the protocol and its values; ``anthropic`` the client of Anthropic's Messages
API (imported where it is used: the SDK is slow to import); ``budget`` the per-run budget.
"""

from agent_core.llm.base import (
    LLM,
    CountsTokens,
    LLMResponse,
    ModelTier,
    NamesModels,
    Usage,
    count_through,
)

__all__ = [
    "LLM",
    "CountsTokens",
    "LLMResponse",
    "ModelTier",
    "NamesModels",
    "Usage",
    "count_through",
]
