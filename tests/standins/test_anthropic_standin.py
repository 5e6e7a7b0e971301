"""The Anthropic stand-in, driven by the real `anthropic.AsyncAnthropic` client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic.types import TextBlock, ToolUseBlock

from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    fault,
    input_tokens,
    refusal_reply,
    reply,
    text_block,
    text_reply,
    tool_use_reply,
)

MODEL = "claude-sonnet-4-6"
KEY = "sk-test-standin"
HELLO: list[Any] = [{"role": "user", "content": "hello"}]
# The SDK's shortest backoff without a retry-after header is 0.375 s (0.5 s minus jitter).
SDK_MIN_BACKOFF = 0.375
LONG_SYSTEM = "You are a careful operations agent. " * 40


class Clock:
    """A settable clock for cache expiry."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[AnthropicStandIn]:
    async with AnthropicStandIn(api_key=KEY) as standin:
        yield standin


def make_client(server: AnthropicStandIn, **options: Any) -> anthropic.AsyncAnthropic:
    options.setdefault("api_key", KEY)
    options.setdefault("max_retries", 0)
    return anthropic.AsyncAnthropic(base_url=server.base_url, **options)


@pytest.fixture
async def client(server: AnthropicStandIn) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with make_client(server) as sdk:
        yield sdk


async def create(client: anthropic.AsyncAnthropic, **overrides: Any) -> anthropic.types.Message:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 256, "messages": HELLO}
    message: anthropic.types.Message = await client.messages.create(**(params | overrides))
    return message


async def raw_post(
    server: AnthropicStandIn, path: str, body: object, headers: dict[str, str]
) -> tuple[int, dict[str, Any], str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.base_url + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.json(), response.headers["request-id"]


async def test_text_reply_round_trips_into_typed_message(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(text_reply("hi there"))
    message = await create(client)
    assert isinstance(message.content[0], TextBlock)
    assert message.content[0].text == "hi there"
    assert (message.model, message.role, message.stop_reason) == (MODEL, "assistant", "end_turn")
    assert message.id.startswith("msg_") and str(message._request_id).startswith("req_")
    assert message.usage.input_tokens == input_tokens({"messages": HELLO}) > 0
    assert message.usage.output_tokens >= 1
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
    (recorded,) = server.requests
    assert recorded.body is not None and recorded.body["messages"] == HELLO
    assert recorded.headers["authorization"] == "<redacted>"
    assert "anthropic-version" in recorded.headers


async def test_tool_use_reply_round_trips(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(tool_use_reply("lookup", {"q": "disk"}, text="Checking."))
    message = await create(client)
    text, call = message.content
    assert isinstance(text, TextBlock) and text.text == "Checking."
    assert isinstance(call, ToolUseBlock)
    assert call.id.startswith("toolu_") and call.name == "lookup" and call.input == {"q": "disk"}
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize(
    "stop_reason",
    ["end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "pause_turn"],
)
async def test_every_stop_reason_is_accepted_by_the_sdk(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic, stop_reason: Any
) -> None:
    sequence = "###" if stop_reason == "stop_sequence" else None
    server.enqueue(
        reply(content=[text_block("x")], stop_reason=stop_reason, stop_sequence=sequence)
    )
    message = await create(client)
    assert (message.stop_reason, message.stop_sequence) == (stop_reason, sequence)


async def test_refusal_carries_stop_details(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(refusal_reply(category="cyber"))
    message = await create(client)
    assert message.stop_reason == "refusal" and message.content == []
    assert message.stop_details is not None and message.stop_details.category == "cyber"


async def test_function_steps_see_the_request(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic
) -> None:
    async def echo_tool_results(request: RecordedRequest) -> Reply:
        (result,) = request.tool_results()
        return text_reply(f"got {result['content']}")

    server.enqueue(lambda request: text_reply(request.last_user_text().upper()), echo_tool_results)
    first = await create(client, messages=[{"role": "user", "content": "shout"}])
    follow_up = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "n", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}],
        },
    ]
    second = await create(client, messages=follow_up)
    assert [first.content[0], second.content[0]] == [
        TextBlock(type="text", text="SHOUT"),
        TextBlock(type="text", text="got 42"),
    ]


@pytest.mark.parametrize("status", [529, 500, 429])
async def test_sdk_retries_faults_then_succeeds(server: AnthropicStandIn, status: int) -> None:
    server.enqueue(fault(status, retry_after=0.01), text_reply("ok"))
    started = time.monotonic()
    async with make_client(server, max_retries=2) as sdk:
        message = await create(sdk)
    assert message.content[0] == TextBlock(type="text", text="ok")
    first, second = server.message_requests()
    assert (
        first.headers["x-stainless-retry-count"],
        second.headers["x-stainless-retry-count"],
    ) == (
        "0",
        "1",
    )
    assert time.monotonic() - started < SDK_MIN_BACKOFF, "retry-after was not honoured"


@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (529, anthropic.OverloadedError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
    ],
)
async def test_faults_raise_typed_errors_without_retries(
    server: AnthropicStandIn,
    client: anthropic.AsyncAnthropic,
    status: int,
    error: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    server.enqueue(fault(status, retry_after=2))
    with pytest.raises(error) as raised:
        await create(client)
    assert raised.value.status_code == status
    assert raised.value.body == {
        "type": "error",
        "error": {"type": error_type, "message": f"stand-in injected {error_type}"},
        "request_id": raised.value.request_id,
    }
    assert raised.value.response.headers["retry-after"] == "2"


async def test_wrong_api_key_is_an_authentication_error(server: AnthropicStandIn) -> None:
    async with make_client(server, api_key="sk-wrong") as sdk:
        with pytest.raises(anthropic.AuthenticationError):
            await create(sdk)
    assert server.pending == 0 and not server.unexpected


async def test_credentials_and_version_are_required(server: AnthropicStandIn) -> None:
    body = {"model": MODEL, "max_tokens": 8, "messages": HELLO}
    version = {"anthropic-version": "2023-06-01"}
    status, error, _ = await raw_post(server, "/v1/messages", body, version)
    assert (status, error["error"]["type"]) == (401, "authentication_error")
    status, error, request_id = await raw_post(server, "/v1/messages", body, {"x-api-key": KEY})
    assert (status, error["error"]["type"]) == (400, "invalid_request_error")
    assert "anthropic-version" in error["error"]["message"] and error["request_id"] == request_id


async def test_x_api_key_header_is_accepted(server: AnthropicStandIn) -> None:
    server.enqueue(text_reply("ok"))
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    body = {"model": MODEL, "max_tokens": 8, "messages": HELLO}
    status, message, _ = await raw_post(server, "/v1/messages", body, headers)
    assert (status, message["type"], message["content"]) == (200, "message", [text_block("ok")])
    assert server.requests[0].headers["x-api-key"] == "<redacted>"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"model": MODEL, "messages": HELLO}, "max_tokens"),
        ({"max_tokens": 8, "messages": HELLO}, "model"),
        ({"model": MODEL, "max_tokens": 8, "messages": []}, "messages"),
        ({"model": MODEL, "max_tokens": 8, "messages": [{"role": "bot", "content": "x"}]}, "role"),
    ],
)
async def test_malformed_requests_are_refused(
    server: AnthropicStandIn, body: dict[str, Any], complaint: str
) -> None:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    status, error, _ = await raw_post(server, "/v1/messages", body, headers)
    assert (status, error["error"]["type"]) == (400, "invalid_request_error")
    assert complaint in error["error"]["message"]


async def test_streaming_is_refused_loudly(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="streaming is not supported"):
        await create(client, stream=True)


async def test_prompt_cache_is_created_then_read(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(text_reply("a"), text_reply("b"))
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    first = (await create(client, system=system)).usage
    second = (await create(client, system=system)).usage
    assert first.cache_creation_input_tokens and first.cache_creation_input_tokens > 0
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert (first.cache_read_input_tokens, second.cache_creation_input_tokens) == (0, 0)
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert first.input_tokens == second.input_tokens == input_tokens({"messages": HELLO})


async def test_moving_breakpoint_reads_the_earlier_prefix(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(text_reply("a"), text_reply("b"))
    mark = {"type": "ephemeral", "ttl": "1h"}
    turn1 = [
        {"role": "user", "content": [{"type": "text", "text": LONG_SYSTEM, "cache_control": mark}]}
    ]
    first = (await create(client, messages=turn1)).usage
    turn2 = [
        {"role": "user", "content": [{"type": "text", "text": LONG_SYSTEM}]},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "next step", "cache_control": mark}]},
    ]
    second = (await create(client, messages=turn2)).usage
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == input_tokens({"messages": turn2}) - input_tokens(
        {"messages": turn1}
    )
    assert second.input_tokens == 0
    assert second.cache_creation is not None and second.cache_creation.ephemeral_1h_input_tokens > 0


async def test_cache_entries_expire_on_the_injected_clock() -> None:
    clock = Clock()
    async with AnthropicStandIn(clock=clock) as standin, make_client(standin) as sdk:
        standin.enqueue(text_reply("a"), text_reply("b"), text_reply("c"))
        marked = {"cache_control": {"type": "ephemeral"}}
        usages = []
        for advance in (0.0, 299.0, 301.0):
            clock.now += advance
            usages.append((await create(sdk, system=LONG_SYSTEM, **marked)).usage)
    created = [u.cache_creation_input_tokens for u in usages]
    read = [u.cache_read_input_tokens for u in usages]
    assert created[0] == read[1] == created[2]
    assert created[0] is not None and created[0] > 0
    assert created[1] == read[0] == read[2] == 0


async def test_too_many_breakpoints_are_refused(client: anthropic.AsyncAnthropic) -> None:
    mark = {"type": "ephemeral"}
    system = [{"type": "text", "text": str(i), "cache_control": mark} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):
        await create(client, system=system)


async def test_count_tokens_uses_the_same_estimate(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic
) -> None:
    tools: list[Any] = [{"name": "lookup", "input_schema": {"type": "object"}}]
    counted = await client.messages.count_tokens(
        model=MODEL, messages=HELLO, system=LONG_SYSTEM, tools=tools
    )
    expected = input_tokens({"messages": HELLO, "system": LONG_SYSTEM, "tools": tools})
    assert counted.input_tokens == expected > input_tokens({"messages": HELLO})
    assert server.requests[0].path == "/v1/messages/count_tokens"


async def test_script_exhaustion_is_reported_without_retries() -> None:
    standin = AnthropicStandIn()
    with pytest.raises(AssertionError, match="unexpected POST"):
        async with standin, make_client(standin, max_retries=2) as sdk:
            with pytest.raises(anthropic.InternalServerError, match="no scripted step left"):
                await create(sdk)
    assert len(standin.requests) == len(standin.unexpected) == 1


async def test_unconsumed_steps_are_reported() -> None:
    with pytest.raises(AssertionError, match="1 scripted step"):
        async with AnthropicStandIn(script=[text_reply("never asked")]):
            pass


async def test_responder_errors_fail_the_request_and_the_check(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic
) -> None:
    def broken(request: RecordedRequest) -> Reply:
        raise KeyError("oops")

    server.enqueue(broken)
    async with make_client(server, max_retries=2) as sdk:
        with pytest.raises(anthropic.InternalServerError, match="responder raised") as raised:
            await create(sdk)
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert len(server.requests) == 1
    with pytest.raises(AssertionError, match="KeyError"):
        server.assert_script_consumed()
    server.responder_errors.clear()


async def test_default_responder_serves_benchmarks_concurrently() -> None:
    async with (
        AnthropicStandIn(default=lambda request: text_reply("ok", latency=0.05)) as standin,
        make_client(standin) as sdk,
    ):
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(create(sdk)) for _ in range(10)]
        elapsed = time.monotonic() - started
    assert all(task.result().content[0] == TextBlock(type="text", text="ok") for task in tasks)
    assert elapsed < 0.45, "latency should overlap across concurrent requests"


async def test_latency_beyond_the_client_timeout_is_an_sdk_timeout(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(text_reply("too late", latency=30))
    with pytest.raises(anthropic.APITimeoutError):
        await create(client, timeout=0.05)
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 1.0, "stop() must cut pending latency short"


async def test_wait_for_requests_signals_arrival(
    server: AnthropicStandIn, client: anthropic.AsyncAnthropic
) -> None:
    server.enqueue(text_reply("ok"))
    async with asyncio.TaskGroup() as group:
        call = group.create_task(create(client))
        async with asyncio.timeout(2):
            (recorded,) = await server.wait_for_requests(1)
    assert recorded.path == "/v1/messages" and call.result().stop_reason == "end_turn"


async def test_unknown_paths_are_404_and_unexpected(server: AnthropicStandIn) -> None:
    status, error, _ = await raw_post(server, "/v1/complete", {}, {"x-api-key": KEY})
    assert (status, error["error"]["type"]) == (404, "not_found_error")
    assert [r.path for r in server.unexpected] == ["/v1/complete"]
    server.unexpected.clear()
