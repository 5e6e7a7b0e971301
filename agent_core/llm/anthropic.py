"""The production :class:`~agent_core.llm.LLM`: Anthropic's Messages API via ``AsyncAnthropic``.

Retries of 408/409/429/5xx/529 are the SDK's own (they honour ``retry-after``). This
module adds what the SDK does not: prompt-cache breakpoints on the shared prefix, cost
from the configured price table, one call on a fallback model when the primary stays
overloaded, and :class:`~agent_core.errors.LLMError` in place of every SDK exception.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, cast

import anthropic
from anthropic import types as sdk

from agent_core.config import DEFAULT_PRICES, ModelPrice, Settings
from agent_core.errors import ConfigError, LLMError
from agent_core.llm import LLMRequest, LLMResponse, ModelTier, Usage
from agent_core.llm.messages import (
    ContentBlock,
    Message,
    TextBlock,
    ToolDefinition,
    ToolUseBlock,
)

__all__ = ["DEFAULT_BASE_URL", "AnthropicLLM", "price_for"]

logger = logging.getLogger(__name__)

_CACHE: sdk.CacheControlEphemeralParam = {"type": "ephemeral"}

DEFAULT_BASE_URL = "https://api.anthropic.com"
"""Used when no base URL is configured; passed explicitly so no profile file can redirect."""


def price_for(model: str, prices: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """The price of ``model``: an exact entry, else the longest entry it extends at a ``-``.

    So a dated id such as ``claude-haiku-4-5-20251001`` takes the ``claude-haiku-4-5`` price.
    """
    if model in prices:
        return prices[model]
    matches = [name for name in prices if model.startswith(name + "-")]
    return prices[max(matches, key=len)] if matches else None


class AnthropicLLM:
    """An :class:`~agent_core.llm.LLM` on the Anthropic Messages API.

    ``system`` and the tool definitions carry ``cache_control`` breakpoints, so the whole
    tools+system prefix is cached and every executor turn after the first reads it; a third
    breakpoint moves with the end of a continuing conversation, so each turn also reads the
    turns before it.

    Every ``stop_reason`` is passed through untouched (``end_turn``, ``tool_use``,
    ``max_tokens``, ``stop_sequence``, ``refusal``, ``pause_turn``, and any the API adds
    later): deciding what each means for a run is the executor's job, not this class's.
    """

    def __init__(
        self,
        *,
        client: anthropic.AsyncAnthropic | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        planner_model: str,
        executor_model: str,
        fast_model: str,
        fallback_model: str | None = None,
        timeout_seconds: float = 120.0,
        max_retries: int = 4,
        max_tokens: int = 4096,
        prices: Mapping[str, ModelPrice] = DEFAULT_PRICES,
        cache_write_multiplier: float = 1.25,
        cache_read_multiplier: float = 0.1,
    ) -> None:
        """Check the price table and build the client.

        Pass either ``client`` (its own timeout and retries apply, and the caller closes
        it) or ``api_key``. ``max_tokens`` is used when a request does not say. Raises
        :class:`ConfigError` when the key is missing or a model has no price.
        """
        if client is not None and api_key is not None:
            raise ConfigError(["AnthropicLLM: pass client or api_key, not both"])
        self._models = {
            ModelTier.PLANNER: planner_model,
            ModelTier.EXECUTOR: executor_model,
            ModelTier.FAST: fast_model,
        }
        self._fallback = fallback_model
        self._prices = _resolve_prices({**self._models, "fallback": fallback_model}, prices)
        self._write_multiplier = cache_write_multiplier
        self._read_multiplier = cache_read_multiplier
        self._max_tokens = max_tokens
        self._owns_client = client is None
        self._client = client or _build_client(api_key, base_url, timeout_seconds, max_retries)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build from :class:`~agent_core.config.Settings`; raises :class:`ConfigError`."""
        key = settings.anthropic_api_key
        return cls(
            api_key=key.get_secret_value() if key is not None else None,
            base_url=settings.anthropic_base_url,
            planner_model=settings.planner_model,
            executor_model=settings.executor_model,
            fast_model=settings.fast_model,
            fallback_model=settings.fallback_model,
            timeout_seconds=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            max_tokens=settings.llm_max_tokens,
            prices=settings.prices,
            cache_write_multiplier=settings.cache_write_multiplier,
            cache_read_multiplier=settings.cache_read_multiplier,
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """One Messages API call; raises :class:`LLMError` when it fails for good."""
        cached: sdk.TextBlockParam = {
            "type": "text",
            "text": request.system,
            "cache_control": _CACHE,
        }

        async def send(model: str) -> LLMResponse:
            message = await self._client.messages.create(
                model=model,
                max_tokens=request.max_tokens or self._max_tokens,
                system=[cached],
                messages=_cached_messages(request.messages),
                tools=_cached_tools(request.tools),
                tool_choice=request.tool_choice or anthropic.omit,
            )
            return self._response(model, message)

        model = self._models[request.tier]
        try:
            return await send(model)
        except anthropic.OverloadedError as error:
            fallback = self._fallback_after(model, error)
        except anthropic.AnthropicError as error:
            raise self._failure(model, error) from error
        try:
            return await send(fallback)
        except anthropic.AnthropicError as error:
            raise self._failure(fallback, error, after=f"{model} was overloaded") from error

    async def count_tokens(self, request: LLMRequest) -> int:
        """Input tokens of ``request`` on its tier's model (``count_tokens`` costs nothing).

        Raises :class:`LLMError` when the call fails for good.
        """
        model = self._models[request.tier]
        tools = request.tools or anthropic.omit
        try:
            counted = await self._client.messages.count_tokens(
                model=model,
                system=request.system,
                messages=_sdk_messages(request.messages),
                tools=cast("list[sdk.MessageCountTokensToolParam]", tools),
            )
        except anthropic.AnthropicError as error:
            raise self._failure(model, error) from error
        return counted.input_tokens

    def model_for(self, tier: ModelTier) -> str:
        """The model ``tier``'s calls ask for first."""
        return self._models[tier]

    def server_address(self) -> tuple[str, int]:
        """Host and port calls go to (``server.address``/``server.port`` in telemetry)."""
        url = self._client.base_url
        return url.host, url.port or (443 if url.scheme == "https" else 80)

    async def aclose(self) -> None:
        """Close the HTTP client, unless it was passed in."""
        if self._owns_client:
            await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _fallback_after(self, model: str, error: anthropic.OverloadedError) -> str:
        fallback = self._fallback
        if fallback is None or fallback == model:
            raise self._failure(model, error) from error
        logger.warning(
            "model stayed overloaded after retries; calling the fallback model once",
            extra={
                "model": model,
                "fallback_model": fallback,
                "status_code": error.status_code,
                "request_id": error.request_id,
            },
        )
        return fallback

    def _response(self, model: str, message: sdk.Message) -> LLMResponse:
        if message.stop_reason is None:
            raise LLMError(model, "the API returned a message without a stop_reason")
        return LLMResponse(
            content=[_block(model, block) for block in message.content],
            stop_reason=message.stop_reason,
            model=message.model,
            usage=self._usage(model, message.usage),
            id=message.id,
        )

    def _usage(self, model: str, usage: sdk.Usage) -> Usage:
        price = self._prices[model]
        written = usage.cache_creation_input_tokens or 0
        read = usage.cache_read_input_tokens or 0
        cost = (
            usage.input_tokens * price.input
            + written * price.input * self._write_multiplier
            + read * price.input * self._read_multiplier
            + usage.output_tokens * price.output
        ) / 1e6
        return Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_write_tokens=written,
            cache_read_tokens=read,
            cost_usd=cost,
        )

    def _failure(self, model: str, error: anthropic.AnthropicError, *, after: str = "") -> LLMError:
        retries = f"gave up after max_retries={self._client.max_retries}"
        if isinstance(error, anthropic.AuthenticationError):
            reason = f"invalid ANTHROPIC_API_KEY: the API refused it ({error.api_message})"
        elif isinstance(error, anthropic.APIStatusError):
            detail = error.api_message or error.message
            reason = f"HTTP {error.status_code} {error.type or 'error'}: {detail}"
            # The statuses the SDK retries by itself, so "gave up after" is true for them.
            if error.status_code in (408, 409, 429) or error.status_code >= 500:
                reason += f" ({retries})"
        elif isinstance(error, anthropic.APITimeoutError):
            reason = f"no response within timeout={self._client.timeout} s ({retries})"
        elif isinstance(error, anthropic.APIConnectionError):
            reason = f"cannot reach {self._client.base_url} ({retries}): {error.__cause__!r}"
        else:
            reason = f"{type(error).__name__}: {error}"
        return LLMError(model, f"{reason}; {after}" if after else reason, code=_code(error))


def _code(error: anthropic.AnthropicError) -> str:
    """``error`` in one word for telemetry: the HTTP status, else what went wrong."""
    if isinstance(error, anthropic.APIStatusError):
        return str(error.status_code)
    if isinstance(error, anthropic.APITimeoutError):  # before its base class
        return "timeout"
    if isinstance(error, anthropic.APIConnectionError):
        return "connection"
    return type(error).__name__


def _build_client(
    api_key: str | None, base_url: str | None, timeout: float, max_retries: int
) -> anthropic.AsyncAnthropic:
    if not api_key or not api_key.strip():
        raise ConfigError(["ANTHROPIC_API_KEY: required to call the Anthropic API"])
    return anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=base_url or DEFAULT_BASE_URL,
        timeout=timeout,
        max_retries=max_retries,
    )


def _resolve_prices(
    models: Mapping[Any, str | None], prices: Mapping[str, ModelPrice]
) -> dict[str, ModelPrice]:
    found = {model: price_for(model, prices) for model in models.values() if model}
    problems = [
        f"AIRLOCK_PRICES: no price for {role} model {model!r} (AIRLOCK_{str(role).upper()}_MODEL)"
        for role, model in models.items()
        if model and found[model] is None
    ]
    if problems:
        raise ConfigError(problems)
    return {model: price for model, price in found.items() if price is not None}


# Blocks the API accepts a breakpoint on; an empty text block is refused one.
_MARKABLE = frozenset({"text", "tool_use", "tool_result"})


def _cached_messages(messages: list[Message]) -> list[sdk.MessageParam]:
    """The conversation as the SDK types it, with a breakpoint on its newest markable block.

    Each executor turn sends the previous turn's prompt plus one exchange, so a breakpoint
    that moves with the end of the conversation lets the next turn read everything before
    it from the cache (the API looks back 20 blocks for the previous entry); with tools and
    system that makes three of the API's four. A single message (a plan, a summary) is sent
    unmarked: nothing would read its entry, and writing one costs a quarter more than
    sending the tokens plainly.
    """
    sent = _sdk_messages(messages)
    if len(sent) < 2:
        return sent
    last = sent[-1]
    content = last["content"]
    blocks: list[Any] = (
        [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    )
    for index in range(len(blocks) - 1, -1, -1):
        block = blocks[index]
        if block.get("type") in _MARKABLE and not (block["type"] == "text" and not block["text"]):
            blocks[index] = {**block, "cache_control": _CACHE}  # fresh dicts: callers' untouched
            sent[-1] = cast("sdk.MessageParam", {**last, "content": blocks})
            break
    return sent


def _sdk_messages(messages: list[Message]) -> list[sdk.MessageParam]:
    """The conversation as the SDK types it (fresh dicts: the caller's are never changed)."""
    return [_message_param(m) for m in messages]


def _message_param(message: Message) -> sdk.MessageParam:
    content = message["content"]
    sent: sdk.MessageContentParam = (
        content if isinstance(content, str) else [_block_param(b) for b in content]
    )
    if message["role"] == "user":
        return sdk.UserMessageParam(role="user", content=sent)
    return sdk.AssistantMessageParam(role="assistant", content=sent)


def _block_param(block: ContentBlock) -> sdk.ContentBlockParam:
    if block["type"] == "text":
        return {"type": "text", "text": block["text"]}
    if block["type"] == "tool_use":
        return {"type": "tool_use", "id": block["id"], "name": block["name"],
                "input": block["input"]}  # fmt: skip
    result: sdk.ToolResultBlockParam = {
        "type": "tool_result", "tool_use_id": block["tool_use_id"], "content": block["content"]
    }  # fmt: skip
    if "is_error" in block:
        result["is_error"] = block["is_error"]
    return result


def _block(model: str, block: sdk.ContentBlock) -> ContentBlock:
    """A block of the model's answer, as the conversation keeps it."""
    if block.type == "text":
        return TextBlock(type="text", text=block.text)
    if block.type == "tool_use":
        return ToolUseBlock(type="tool_use", id=block.id, name=block.name, input=dict(block.input))
    # Thinking and server tools are never asked for: such a block would be dropped on the
    # way back to the model, which refuses a conversation missing it.
    raise LLMError(
        model, f"the model answered with a {block.type} block, which airlock never asks for"
    )


def _cached_tools(
    tools: list[ToolDefinition] | None,
) -> list[sdk.ToolUnionParam] | anthropic.Omit:
    if not tools:
        return anthropic.omit
    *head, last = tools
    # A breakpoint the caller set (say a 1h TTL) wins; the caller's dicts are never changed.
    marked = {"cache_control": _CACHE, **last}
    return cast("list[sdk.ToolUnionParam]", [*head, marked])
