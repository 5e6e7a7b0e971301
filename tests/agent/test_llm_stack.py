"""The LLM stack: a call is one request, seen whole by each middleware in the documented order."""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent_core.errors import LLMError
from agent_core.llm import LLM, LLMRequest, LLMResponse, ModelTier, Next, llm_stack
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.llm.budget import Budget, BudgetLimits
from agent_core.stops import BudgetExceeded
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply

REPO = Path(__file__).resolve().parents[2]
EVERY_FIELD = LLMRequest(
    tier=ModelTier.EXECUTOR,
    system="You check disks.",
    messages=[{"role": "user", "content": "check the disks"}],
    tools=[{"name": "df", "description": "Disk usage.", "input_schema": {"type": "object"}}],
    tool_choice={"type": "auto"},
    max_tokens=64,
)


@dataclass(kw_only=True)
class Recorder:
    """A middleware that writes down what it saw on the way in and out."""

    name: str
    log: list[str]
    seen: list[LLMRequest] = field(default_factory=list)

    async def __call__(self, request: LLMRequest, call_next: Next) -> LLMResponse:
        self.seen.append(request)
        self.log.append(f"{self.name} in")
        response = await call_next(request)
        self.log.append(f"{self.name} out: {response.text}")
        return response


@dataclass(kw_only=True)
class Shorter:
    """A middleware that lowers ``max_tokens`` for everything below it."""

    max_tokens: int

    async def __call__(self, request: LLMRequest, call_next: Next) -> LLMResponse:
        return await call_next(dataclasses.replace(request, max_tokens=self.max_tokens))


class CompleteOnly:
    """A model that cannot count tokens (a gateway without ``count_tokens``, say)."""

    def __init__(self, llm: LLM) -> None:
        self._llm = llm

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return await self._llm.complete(request)


async def test_each_middleware_sees_every_call_whole_outermost_first(
    anthropic: AnthropicStandIn, llm: AnthropicLLM
) -> None:
    log: list[str] = []
    outer, middle, inner = (Recorder(name=name, log=log) for name in ("outer", "middle", "inner"))
    stack = llm_stack(llm, outer, middle, inner)
    anthropic.enqueue(text_reply("disks are fine"), text_reply("still fine"))

    first = await stack.complete(EVERY_FIELD)
    second = await stack.complete(dataclasses.replace(EVERY_FIELD, tier=ModelTier.FAST))

    assert (first.text, second.text) == ("disks are fine", "still fine")
    once = ["outer in", "middle in", "inner in"]
    back = [f"{name} out: {{}}" for name in ("inner", "middle", "outer")]
    assert log == [
        *once, *(b.format("disks are fine") for b in back),
        *once, *(b.format("still fine") for b in back),
    ]  # fmt: skip
    for recorder in (outer, middle, inner):
        assert recorder.seen == [EVERY_FIELD, dataclasses.replace(EVERY_FIELD, tier=ModelTier.FAST)]
        assert recorder.seen[0] is EVERY_FIELD, "passed on, not rebuilt field by field"
    body = anthropic.message_requests()[0].body or {}
    assert (body["model"], body["max_tokens"], body["tool_choice"]) == (
        "claude-sonnet-4-6",
        64,
        {"type": "auto"},
    )
    assert [b["model"] for b in (r.body or {} for r in anthropic.message_requests())] == [
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
    ]


async def test_a_middleware_changes_the_request_for_the_layers_below_it_only(
    anthropic: AnthropicStandIn, llm: AnthropicLLM
) -> None:
    log: list[str] = []
    above, below = Recorder(name="above", log=log), Recorder(name="below", log=log)
    anthropic.enqueue(text_reply("ok"))

    await llm_stack(llm, above, Shorter(max_tokens=7), below).complete(EVERY_FIELD)

    assert above.seen == [EVERY_FIELD]
    assert below.seen == [dataclasses.replace(EVERY_FIELD, max_tokens=7)]
    assert (anthropic.message_requests()[0].body or {})["max_tokens"] == 7
    assert EVERY_FIELD.max_tokens == 64


async def test_a_middleware_that_refuses_a_call_keeps_it_from_the_layers_below(
    anthropic: AnthropicStandIn, llm: AnthropicLLM
) -> None:
    log: list[str] = []
    below = Recorder(name="below", log=log)
    budget = Budget(limits=BudgetLimits(llm_calls=1, tokens=10**9, usd=100.0))
    stack = llm_stack(llm, budget, below)
    anthropic.enqueue(text_reply("the one call"))

    await stack.complete(EVERY_FIELD)
    with pytest.raises(BudgetExceeded, match="llm_calls budget exhausted: 1 of 1"):
        await stack.complete(EVERY_FIELD)

    assert below.seen == [EVERY_FIELD]
    assert len(anthropic.message_requests()) == 1 and budget.spend.llm_calls == 1


async def test_counting_tokens_goes_straight_to_the_model(
    anthropic: AnthropicStandIn, llm: AnthropicLLM
) -> None:
    log: list[str] = []
    budget = Budget(limits=BudgetLimits(llm_calls=1, tokens=10, usd=0.01))
    stack = llm_stack(llm, budget, Recorder(name="only", log=log))

    counted = await stack.count_tokens(EVERY_FIELD)

    assert counted == await llm.count_tokens(EVERY_FIELD) > 0
    assert log == [] and budget.spend.llm_calls == 0
    assert [r.path for r in anthropic.requests] == ["/v1/messages/count_tokens"] * 2
    with pytest.raises(LLMError, match="CompleteOnly cannot count tokens"):
        await llm_stack(CompleteOnly(llm), budget).count_tokens(EVERY_FIELD)


def _signatures(root: Path) -> list[tuple[str, str, list[str]]]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name in (
                "complete",
                "count_tokens",
            ):
                arguments = node.args
                names = [a.arg for a in arguments.posonlyargs + arguments.args]
                names += [a.arg for a in arguments.kwonlyargs]
                names += [f"*{a.arg}" for a in (arguments.vararg, arguments.kwarg) if a is not None]
                found.append((str(path.relative_to(REPO)), node.name, names))
    return found


def test_a_call_s_parameters_are_declared_on_the_request_alone() -> None:
    """Adding a parameter to every model call is a change to LLMRequest, in one file: no model
    or wrapper declares the parameters again."""
    signatures = [
        s for package in ("agent_core", "bot", "bench") for s in _signatures(REPO / package)
    ]
    assert {(path, name) for path, name, _ in signatures} >= {
        ("agent_core/llm/base.py", "complete"),
        ("agent_core/llm/anthropic.py", "count_tokens"),
        ("agent_core/llm/stack.py", "complete"),
    }
    assert [s for s in signatures if s[2] != ["self", "request"]] == []
