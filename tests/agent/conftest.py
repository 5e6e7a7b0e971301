"""Fixtures for the agent core: the Anthropic stand-in, the real AnthropicLLM, a store, tools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_core.approvals import Authority, DecisionService, edit_risk_check, schema_edit_check
from agent_core.audit.trail import Audit
from agent_core.errors import ToolError
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.llm.budget import BudgetLimits
from agent_core.models import FINAL_STATUSES, RiskLevel, Run, RunStatus
from agent_core.runs.claims import LocalClaims
from agent_core.runs.control import RunControl
from agent_core.runs.executor import ExecutorLimits
from agent_core.runs.host import RunHost
from agent_core.runs.orchestrator import Orchestrator, RunPolicy
from agent_core.runs.slots import RunQueue
from agent_core.store import Store, open_store
from agent_core.testing.anthropic_server import AnthropicStandIn
from agent_core.testing.channel import RecordingChannel, approve_all
from agent_core.tools import Tool, ToolContext, ToolRegistry
from tests.support import TEST_AUDIT_KEY

API_KEY = "sk-ant-test-key"


@pytest.fixture
async def anthropic() -> AsyncIterator[AnthropicStandIn]:
    """The Anthropic stand-in; a test fails if its script is left unconsumed."""
    async with AnthropicStandIn(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def llm(anthropic: AnthropicStandIn) -> AsyncIterator[AnthropicLLM]:
    """The production LLM class, talking to the stand-in through the real SDK."""
    model = AnthropicLLM(
        api_key=API_KEY,
        base_url=anthropic.base_url,
        planner_model="claude-opus-4-7",
        executor_model="claude-sonnet-4-6",
        fast_model="claude-haiku-4-5",
        max_retries=0,
        timeout_seconds=10,
    )
    async with model:
        yield model


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}", audit_key=TEST_AUDIT_KEY)
    try:
        yield opened
    finally:
        await opened.close()


def text_tool(name: str, risk: RiskLevel, answer: Callable[[dict[str, Any]], str]) -> Tool:
    """A tool whose output is computed from its arguments."""

    async def handler(arguments: dict[str, Any], context: ToolContext) -> str:
        return answer(arguments)

    return Tool(
        name=name,
        description=f"The {name} tool.",
        input_schema={
            "type": "object",
            "properties": {"target": {"type": "string"}},
            "required": ["target"],
        },
        risk=risk,
        handler=handler,
    )


@dataclass(kw_only=True)
class Tools:
    """The test tools, and what they were called with."""

    registry: ToolRegistry
    calls: list[tuple[str, dict[str, Any]]]
    slow_started: asyncio.Event


@pytest.fixture
def tools() -> Tools:
    calls: list[tuple[str, dict[str, Any]]] = []
    slow_started = asyncio.Event()

    def recorded(name: str, output: str) -> Callable[[dict[str, Any]], str]:
        def answer(arguments: dict[str, Any]) -> str:
            calls.append((name, arguments))
            return output.format(**arguments)

        return answer

    def broken(arguments: dict[str, Any]) -> str:
        calls.append(("broken", arguments))
        raise RuntimeError("disk on fire")

    def refused(arguments: dict[str, Any]) -> str:
        raise ToolError("refuse", "nothing to see")

    async def slow(arguments: dict[str, Any], context: ToolContext) -> str:
        calls.append(("slow", arguments))
        slow_started.set()
        await asyncio.Event().wait()  # a tool that never finishes by itself
        return "unreachable"

    registry = ToolRegistry(
        [
            text_tool("lookup", RiskLevel.LOW, recorded("lookup", "{target} is healthy")),
            text_tool("restart", RiskLevel.HIGH, recorded("restart", "{target} restarted")),
            text_tool("notify", RiskLevel.MEDIUM, recorded("notify", "told {target}")),
            text_tool("broken", RiskLevel.LOW, broken),
            text_tool("refuse", RiskLevel.LOW, refused),
            Tool(
                name="slow",
                description="Never ends.",
                input_schema={"type": "object", "properties": {}},
                risk=RiskLevel.LOW,
                handler=slow,
                timeout_seconds=0.2,
            ),
        ]
    )
    return Tools(registry=registry, calls=calls, slow_started=slow_started)


def policy(**changes: Any) -> RunPolicy:
    """A policy with generous limits unless a test narrows one."""
    budget = changes.pop("budget", BudgetLimits(llm_calls=50, tokens=10_000_000, usd=100.0))
    executor = changes.pop("executor", ExecutorLimits(max_iterations=6, tool_timeout_seconds=5))
    return RunPolicy(budget=budget, executor=executor, **changes)


@dataclass(kw_only=True)
class Harness:
    """Everything a run needs, wired to the stand-in, with a runner of its own."""

    store: Store
    channel: RecordingChannel
    orchestrator: Orchestrator
    runner: RunHost
    service: DecisionService
    control: RunControl

    async def start(self, goal: str = "check the web tier", **fields: Any) -> Run:
        run = await self.store.create_run(Run(goal=goal, requester="U0REQUEST", **fields))
        await self.runner.submit(run.id)
        return run

    async def finished(self, run_id: str, timeout: float = 30) -> Run:
        async with asyncio.timeout(timeout):
            return await self.runner.wait_for(run_id, FINAL_STATUSES)

    async def parked(self, run_id: str, timeout: float = 30) -> Run:
        async with asyncio.timeout(timeout):
            return await self.runner.wait_for(
                run_id, {RunStatus.AWAITING_APPROVAL, *FINAL_STATUSES}
            )

    async def run(self, goal: str = "check the web tier", **fields: Any) -> Run:
        return await self.finished((await self.start(goal, **fields)).id)

    async def recovered(self, run_id: str, timeout: float = 20) -> Run:
        """``run_id`` once it ends in a new runner and orchestrator on the same store, as in
        the next process to start (this runner must be stopped first)."""
        o = self.orchestrator
        again = RunHost(store=self.store, channel=self.channel, policy=o.policy.approvals,
                        claims=LocalClaims(store=self.store),
                        orchestrator=Orchestrator(store=o.store, llm=o.llm, tools=o.tools,
                                                  channel=o.channel, policy=o.policy,
                                                  workspace=o.workspace))  # fmt: skip
        await again.start()  # recovers unfinished runs
        try:
            async with asyncio.timeout(timeout):
                return await again.wait_for(run_id, FINAL_STATUSES)
        finally:
            await again.stop()


@pytest.fixture
async def harness_factory(
    store: Store, llm: AnthropicLLM, tools: Tools, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    runners: list[RunHost] = []

    async def build(
        channel: RecordingChannel | None = None, authority: Authority | None = None,
        registry: ToolRegistry | None = None, memory: Any = None, max_concurrent_runs: int = 0,
        **policy_changes: Any,
    ) -> Harness:  # fmt: skip
        channel = channel or RecordingChannel(decider=approve_all())
        run_policy = policy(**policy_changes)
        registry = registry or tools.registry
        orchestrator = Orchestrator(
            store=store, llm=llm, tools=registry, channel=channel, policy=run_policy,
            workspace=tmp_path, memory=memory,
        )  # fmt: skip
        audit = Audit(store=store)
        authority = authority or Authority(approvers=["U0APPROVER"], admins=["U0ADMIN"],
                                           members_of=channel.members_of)  # fmt: skip
        service = DecisionService(
            store=store, authority=authority, audit=audit, check_edit=schema_edit_check(registry),
            edit_risk=edit_risk_check(registry, run_policy.risk, store),
        )  # fmt: skip
        channel.service = service
        runner = RunHost(store=store, orchestrator=orchestrator, channel=channel,
                         policy=run_policy.approvals, claims=LocalClaims(store=store),
                         slots=RunQueue(limit=max_concurrent_runs))  # fmt: skip
        await runner.start()
        runners.append(runner)
        control = RunControl(store=store, authority=authority, audit=audit)
        return Harness(store=store, channel=channel, orchestrator=orchestrator, runner=runner,
                       service=service, control=control)  # fmt: skip

    yield build
    for runner in runners:
        await runner.stop()


@pytest.fixture
async def harness(harness_factory: Callable[..., Awaitable[Harness]]) -> Harness:
    return await harness_factory()
