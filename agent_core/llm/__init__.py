"""The model layer: the LLM protocol every caller uses, and what wraps a model's calls.

``base`` holds the protocol and its values (a call is one :class:`LLMRequest`); ``stack``
composes middleware around a model (:func:`llm_stack`); ``anthropic`` the client of
Anthropic's Messages API (imported where it is used: the SDK is slow to import); ``budget``
the per-run budget, a middleware.
"""

from agent_core.llm.base import (
    LLM,
    CountsTokens,
    LLMRequest,
    LLMResponse,
    ModelTier,
    NamesModels,
    Usage,
)
from agent_core.llm.stack import LLMStack, Middleware, Next, llm_stack

__all__ = [
    "LLM",
    "CountsTokens",
    "LLMRequest",
    "LLMResponse",
    "LLMStack",
    "Middleware",
    "ModelTier",
    "NamesModels",
    "Next",
    "Usage",
    "llm_stack",
]
