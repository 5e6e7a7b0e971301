"""AnthropicLLM against the local Anthropic stand-in, through the real SDK client."""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent_core.config import ModelPrice, Settings
from agent_core.errors import ConfigError, LLMError
from agent_core.llm import LLMRequest, ModelTier
from agent_core.llm.anthropic import AnthropicLLM, price_for
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    StopReason,
    fault,
    input_tokens,
    refusal_reply,
    reply,
    text_block,
    text_reply,
    tool_use_block,
)

KEY = "sk-test-airlock-llm"
PLANNER, EXECUTOR, FAST = "claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5"
FALLBACK = "claude-haiku-4-5-20251001"
PRICES = {
    PLANNER: ModelPrice(input=5.0, output=25.0),
    EXECUTOR: ModelPrice(input=3.0, output=15.0),
    FAST: ModelPrice(input=1.0, output=5.0),
}
SYSTEM = "You are a careful operations agent. " * 20
HELLO: list[dict[str, Any]] = [{"role": "user", "content": "check the disks"}]
TOOLS: list[dict[str, Any]] = [
    {"name": "df", "description": "Disk usage.", "input_schema": {"type": "object"}},
    {
        "name": "du",
        "description": "Folder sizes.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
]
EPHEMERAL = {"type": "ephemeral"}


def make_llm(server: AnthropicStandIn, **overrides: Any) -> AnthropicLLM:
    options: dict[str, Any] = {
        "api_key": KEY,
        "base_url": server.base_url,
        "planner_model": PLANNER,
        "executor_model": EXECUTOR,
        "fast_model": FAST,
        "timeout_seconds": 5.0,
        "max_retries": 0,
        "prices": PRICES,
    }
    return AnthropicLLM(**(options | overrides))


@pytest.fixture
async def server() -> AsyncIterator[AnthropicStandIn]:
    async with AnthropicStandIn(api_key=KEY) as standin:
        yield standin


@pytest.fixture
async def llm(server: AnthropicStandIn) -> AsyncIterator[AnthropicLLM]:
    async with make_llm(server) as model:
        yield model


def sent_models(server: AnthropicStandIn) -> list[str]:
    return [(r.body or {}).get("model", "") for r in server.message_requests()]


@pytest.mark.parametrize(
    ("tier", "model"),
    [(ModelTier.PLANNER, PLANNER), (ModelTier.EXECUTOR, EXECUTOR), (ModelTier.FAST, FAST)],
)
async def test_each_tier_calls_its_model(
    server: AnthropicStandIn, llm: AnthropicLLM, tier: ModelTier, model: str
) -> None:
    server.enqueue(text_reply("hi"))
    response = await llm.complete(LLMRequest(tier=tier, system=SYSTEM, messages=HELLO))
    assert (response.model, response.text, response.stop_reason) == (model, "hi", "end_turn")
    assert sent_models(server) == [model]


async def test_system_and_last_tool_carry_the_cache_breakpoints(
    server: AnthropicStandIn, llm: AnthropicLLM
) -> None:
    tools = copy.deepcopy(TOOLS)
    server.enqueue(text_reply("ok"))
    await llm.complete(
        LLMRequest(
            tier=ModelTier.EXECUTOR,
            system=SYSTEM,
            messages=HELLO,
            tools=tools,
            tool_choice={"type": "auto"},
            max_tokens=77,
        )
    )
    (request,) = server.message_requests()
    body = request.body or {}
    assert body["system"] == [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}]
    assert body["tools"] == [TOOLS[0], {**TOOLS[1], "cache_control": EPHEMERAL}]
    assert (body["tool_choice"], body["max_tokens"], body["messages"]) == (
        {"type": "auto"},
        77,
        HELLO,
    )
    assert tools == TOOLS, "the caller's tool definitions must not be changed"


async def test_without_tools_none_are_sent(server: AnthropicStandIn, llm: AnthropicLLM) -> None:
    server.enqueue(text_reply("ok"))
    await llm.complete(LLMRequest(tier=ModelTier.FAST, system=SYSTEM, messages=HELLO, tools=[]))
    (request,) = server.message_requests()
    assert "tools" not in (request.body or {}) and "tool_choice" not in (request.body or {})


async def test_usage_and_cost_of_a_cache_write_then_a_cache_read(server: AnthropicStandIn) -> None:
    server.enqueue(
        reply(content=[text_block("first")], output_tokens=120),
        reply(content=[text_block("second")], output_tokens=30),
    )
    prefix = input_tokens({"tools": TOOLS, "system": SYSTEM})
    uncached = input_tokens({"messages": HELLO})
    async with make_llm(server, cache_write_multiplier=2.0, cache_read_multiplier=0.5) as llm:
        calls = [
            await llm.complete(
                LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=HELLO, tools=TOOLS)
            )
            for _ in range(2)
        ]
    first, second = (call.usage for call in calls)
    assert (first.input_tokens, first.cache_write_tokens, first.cache_read_tokens) == (
        uncached,
        prefix,
        0,
    )
    assert (second.input_tokens, second.cache_write_tokens, second.cache_read_tokens) == (
        uncached,
        0,
        prefix,
    )
    assert (first.output_tokens, second.output_tokens) == (120, 30)
    assert first.cost_usd == pytest.approx((uncached * 3 + prefix * 3 * 2.0 + 120 * 15) / 1e6)
    assert second.cost_usd == pytest.approx((uncached * 3 + prefix * 3 * 0.5 + 30 * 15) / 1e6)


async def test_content_is_plain_dicts_that_go_straight_back(
    server: AnthropicStandIn, llm: AnthropicLLM
) -> None:
    blocks = [text_block("Looking."), tool_use_block("du", {"path": "/var", "depth": None})]
    server.enqueue(reply(content=blocks, stop_reason="tool_use"), text_reply("done"))
    first = await llm.complete(
        LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=HELLO, tools=TOOLS)
    )
    assert first.content == blocks and first.tool_uses == [blocks[1]]
    result = {"type": "tool_result", "tool_use_id": blocks[1]["id"], "content": "3G"}
    turns = [*HELLO, {"role": "assistant", "content": first.content}]
    turns.append({"role": "user", "content": [result]})
    await llm.complete(
        LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=turns, tools=TOOLS)
    )
    sent = server.message_requests()[1].messages
    # Unchanged but for the conversation's moving cache breakpoint on the newest block.
    assert sent[-1]["content"][-1].pop("cache_control") == EPHEMERAL
    assert sent == turns


@pytest.mark.parametrize("stop_reason", ["max_tokens", "pause_turn", "stop_sequence", "end_turn"])
async def test_stop_reasons_pass_through(
    server: AnthropicStandIn, llm: AnthropicLLM, stop_reason: StopReason
) -> None:
    server.enqueue(reply(content=[text_block("partial")], stop_reason=stop_reason))
    response = await llm.complete(
        LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=HELLO)
    )
    assert (response.stop_reason, response.text) == (stop_reason, "partial")


async def test_refusal_passes_through(server: AnthropicStandIn, llm: AnthropicLLM) -> None:
    server.enqueue(refusal_reply(category="cyber"))
    response = await llm.complete(
        LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=HELLO)
    )
    assert (response.stop_reason, response.content) == ("refusal", [])


async def test_overload_is_retried_by_the_sdk_then_succeeds(server: AnthropicStandIn) -> None:
    server.enqueue(fault(529, retry_after=0.01), text_reply("ok"))
    async with make_llm(server, max_retries=2, fallback_model=FALLBACK) as llm:
        response = await llm.complete(
            LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=HELLO)
        )
    assert (response.model, response.text) == (EXECUTOR, "ok")
    assert sent_models(server) == [EXECUTOR, EXECUTOR]


async def test_persistent_overload_falls_back_once(
    server: AnthropicStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue(fault(529, retry_after=0.01), fault(529, retry_after=0.01), text_reply("hi"))
    async with make_llm(server, max_retries=1, fallback_model=FALLBACK) as llm:
        with caplog.at_level(logging.WARNING, logger="agent_core.llm.anthropic"):
            response = await llm.complete(
                LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=HELLO)
            )
    assert (response.model, response.text) == (FALLBACK, "hi")
    assert sent_models(server) == [EXECUTOR, EXECUTOR, FALLBACK]
    usage = response.usage
    expected = (
        usage.input_tokens + usage.cache_write_tokens * 1.25 + usage.output_tokens * 5
    ) / 1e6
    assert usage.cost_usd == pytest.approx(expected), "priced as claude-haiku-4-5"
    (record,) = caplog.records
    assert (record.__dict__["model"], record.__dict__["fallback_model"]) == (EXECUTOR, FALLBACK)
    assert record.__dict__["status_code"] == 529
    assert KEY not in str(record.__dict__)


async def test_overloaded_fallback_fails_naming_both(server: AnthropicStandIn) -> None:
    server.enqueue(fault(529), fault(529))
    async with make_llm(server, fallback_model=FALLBACK) as llm:
        with pytest.raises(LLMError) as raised:
            await llm.complete(LLMRequest(tier=ModelTier.PLANNER, system=SYSTEM, messages=HELLO))
    assert raised.value.model == FALLBACK
    assert "529" in raised.value.reason and f"{PLANNER} was overloaded" in raised.value.reason


async def test_persistent_overload_without_fallback_is_an_llm_error(
    server: AnthropicStandIn,
) -> None:
    server.enqueue(fault(529, retry_after=0.01), fault(529, retry_after=0.01))
    async with make_llm(server, max_retries=1) as llm:
        with pytest.raises(LLMError) as raised:
            await llm.complete(LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=HELLO))
    assert raised.value.model == EXECUTOR
    assert raised.value.reason == (
        "HTTP 529 overloaded_error: stand-in injected overloaded_error"
        " (gave up after max_retries=1)"
    )
    assert sent_models(server) == [EXECUTOR, EXECUTOR]


async def test_bad_request_says_what_the_api_said(
    server: AnthropicStandIn, llm: AnthropicLLM
) -> None:
    server.enqueue(fault(400, message="messages.0: bad"))
    with pytest.raises(LLMError, match=r"HTTP 400 invalid_request_error: messages\.0: bad$"):
        await llm.complete(LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=HELLO))


async def test_wrong_api_key_is_an_llm_error(server: AnthropicStandIn) -> None:
    async with make_llm(server, api_key="sk-wrong-key", max_retries=2) as llm:
        with pytest.raises(LLMError, match="invalid ANTHROPIC_API_KEY") as raised:
            await llm.complete(LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=HELLO))
    assert "sk-wrong-key" not in str(raised.value)
    assert len(server.message_requests()) == 1, "a 401 is not retried"


async def test_timeout_is_an_llm_error(server: AnthropicStandIn) -> None:
    server.enqueue(text_reply("too late", latency=30))
    async with make_llm(server, timeout_seconds=0.05) as llm:
        with pytest.raises(LLMError, match="no response within") as raised:
            await llm.complete(LLMRequest(tier=ModelTier.FAST, system=SYSTEM, messages=HELLO))
    assert raised.value.model == FAST


async def test_unreachable_server_is_an_llm_error() -> None:
    async with AnthropicStandIn() as gone:
        pass
    async with make_llm(gone) as llm:
        with pytest.raises(LLMError, match="cannot reach"):
            await llm.complete(LLMRequest(tier=ModelTier.FAST, system=SYSTEM, messages=HELLO))


@pytest.mark.parametrize("missing", ["executor", "fallback"])
def test_a_model_without_a_price_is_a_config_error(missing: str) -> None:
    models = {"executor_model": EXECUTOR, "fallback_model": FALLBACK}
    models[f"{missing}_model"] = "claude-unpriced-1"
    with pytest.raises(ConfigError) as raised:
        AnthropicLLM(api_key=KEY, planner_model=PLANNER, fast_model=FAST, prices=PRICES, **models)
    (problem,) = raised.value.problems
    assert "AIRLOCK_PRICES" in problem and "'claude-unpriced-1'" in problem
    assert f"AIRLOCK_{missing.upper()}_MODEL" in problem


def test_prices_match_exactly_or_by_the_longest_dated_prefix() -> None:
    old, new = ModelPrice(input=15, output=75), ModelPrice(input=5, output=25)
    prices = {"claude-opus-4": old, "claude-opus-4-7": new}
    assert price_for("claude-opus-4-7", prices) is new
    assert price_for("claude-opus-4-7-20260101", prices) is new
    assert price_for("claude-opus-4-20250514", prices) is old
    assert price_for("claude-opus-4-70", {"claude-opus-4-7": new}) is None


def test_a_missing_api_key_is_a_config_error() -> None:
    settings = Settings(_env_file=None, anthropic_api_key=None)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicLLM.from_settings(settings)


async def test_from_settings(server: AnthropicStandIn) -> None:
    settings = Settings(
        _env_file=None,
        anthropic_api_key=KEY,
        anthropic_base_url=server.base_url,
        llm_max_retries=0,
        llm_max_tokens=300,
        fallback_model=FALLBACK,
    )
    server.enqueue(text_reply("ok"))
    async with AnthropicLLM.from_settings(settings) as llm:
        response = await llm.complete(
            LLMRequest(tier=ModelTier.PLANNER, system=SYSTEM, messages=HELLO)
        )
    (request,) = server.message_requests()
    assert (request.body or {})["max_tokens"] == 300
    assert response.model == settings.planner_model and response.usage.cost_usd > 0


def _turns(steps: int) -> list[list[dict[str, Any]]]:
    """The conversations of a ``steps``-tool run, as the executor sends them turn by turn."""
    conversation: list[dict[str, Any]] = [{"role": "user", "content": "check every disk"}]
    sent = [copy.deepcopy(conversation)]
    for step in range(steps):
        use = {"type": "tool_use", "id": f"toolu_{step}", "name": "df", "input": {"n": step}}
        conversation.append({"role": "assistant", "content": [use]})
        result = {"type": "tool_result", "tool_use_id": f"toolu_{step}",
                  "content": f"/dev/sd{step}: 41% used " * 30}  # fmt: skip
        conversation.append({"role": "user", "content": [result]})
        sent.append(copy.deepcopy(conversation))
    return sent


async def test_a_growing_conversation_reads_each_earlier_turn_from_the_cache(
    server: AnthropicStandIn, llm: AnthropicLLM
) -> None:
    turns = _turns(5)
    server.enqueue(*[text_reply("ok") for _ in turns])
    usages = []
    for messages in turns:
        kept = copy.deepcopy(messages)
        response = await llm.complete(
            LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=messages, tools=TOOLS)
        )
        assert messages == kept, "the caller's conversation must not be changed"
        usages.append(response.usage)
    for before, usage in itertools.pairwise(usages[1:]):
        # Everything the previous turn sent is read back; only the newest exchange is new.
        assert usage.cache_read_tokens == before.cache_read_tokens + before.cache_write_tokens
    total = sum(u.input_tokens + u.cache_write_tokens + u.cache_read_tokens for u in usages)
    assert sum(u.cache_read_tokens for u in usages) / total >= 0.7
    marked = [
        [block for block in message["content"] if "cache_control" in block]
        for message in (server.message_requests()[-1].body or {})["messages"]
        if isinstance(message["content"], list)
    ]
    assert sum(map(len, marked)) == 1 and "cache_control" in marked[-1][0]


async def test_a_single_message_is_sent_without_a_conversation_breakpoint(
    server: AnthropicStandIn, llm: AnthropicLLM
) -> None:
    server.enqueue(text_reply("ok"))
    await llm.complete(LLMRequest(tier=ModelTier.PLANNER, system=SYSTEM, messages=HELLO))
    assert (server.message_requests()[0].body or {})["messages"] == HELLO


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        ("look again", [{"type": "text", "text": "look again", "cache_control": EPHEMERAL}]),
        (
            [{"type": "text", "text": "a"}, {"type": "text", "text": ""}],
            [
                {"type": "text", "text": "a", "cache_control": EPHEMERAL},
                {"type": "text", "text": ""},
            ],
        ),
        ([{"type": "text", "text": ""}], [{"type": "text", "text": ""}]),
        ("", ""),
    ],
    ids=["string", "skips-empty-text", "nothing-markable", "empty-string"],
)
async def test_the_breakpoint_goes_on_the_newest_block_the_api_accepts_one_on(
    server: AnthropicStandIn, llm: AnthropicLLM, last: Any, expected: Any
) -> None:
    messages = [
        *HELLO,
        {"role": "assistant", "content": "which?"},
        {"role": "user", "content": last},
    ]
    server.enqueue(text_reply("ok"))
    await llm.complete(LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=messages))
    sent = (server.message_requests()[0].body or {})["messages"]
    assert sent[:2] == messages[:2] and sent[2]["content"] == expected


async def test_breakpoints_smuggled_into_the_conversation_are_dropped_and_one_is_placed(
    server: AnthropicStandIn, llm: AnthropicLLM
) -> None:
    # A block carrying its own cache_control (a tool result or a memory someone shaped so)
    # is not the conversation's to set: four of them would push the request past the API's
    # limit of four breakpoints, and the stand-in would refuse it with a 400 as the API does.
    smuggled = {"type": "ephemeral", "ttl": "1h"}
    own: list[Any] = [
        {
            "role": role,
            "content": [{"type": "text", "text": f"turn {i}", "cache_control": smuggled}],
        }
        for i, role in enumerate(["user", "assistant", "user", "assistant", "user"])
    ]
    server.enqueue(text_reply("ok"))
    await llm.complete(LLMRequest(tier=ModelTier.EXECUTOR, system=SYSTEM, messages=own,
                                  tools=TOOLS))  # fmt: skip
    sent = (server.message_requests()[0].body or {})["messages"]
    marks = [b["cache_control"] for m in sent for b in m["content"] if "cache_control" in b]
    assert marks == [EPHEMERAL], "only airlock's own breakpoint, on the newest block"
    assert sent[-1]["content"] == [{"type": "text", "text": "turn 4", "cache_control": EPHEMERAL}]
    assert own[0]["content"][0]["cache_control"] == smuggled, "the caller's dicts are untouched"
