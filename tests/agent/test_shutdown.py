"""Shutting down with a grace period: the step in flight is checkpointed, then resumed later."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from agent_core.models import RiskLevel, Run, RunStatus
from agent_core.runs.orchestrator import Checkpoint
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.tools import Tool, ToolContext, ToolRegistry
from tests.agent.conftest import Harness

Factory = Callable[..., Awaitable[Harness]]


async def test_sigterm_lets_the_tool_in_flight_finish_and_the_next_start_resumes_after_it(
    harness_factory: Factory, anthropic: AnthropicStandIn
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[dict[str, Any]] = []

    async def migrate(arguments: dict[str, Any], context: ToolContext) -> str:
        calls.append(arguments)
        started.set()
        await release.wait()
        return "migrated"

    schema = {"type": "object", "properties": {"db": {"type": "string"}}}
    registry = ToolRegistry([Tool(name="migrate", description="Migrate.", input_schema=schema,
                                  risk=RiskLevel.LOW, handler=migrate)])  # fmt: skip
    harness = await harness_factory(registry=registry)
    plan = {"subtasks": [{"id": "s1", "description": "migrate", "required_tools": ["migrate"],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    anthropic.enqueue(tool_use_reply("submit_plan", plan), tool_use_reply("migrate", {"db": "a"}))
    run = await harness.start()
    async with asyncio.timeout(10):
        await started.wait()
    stopping = asyncio.create_task(harness.runner.stop(grace_seconds=10))
    await harness.orchestrator.draining.wait()
    late = await harness.store.create_run(Run(goal="arrives late", requester="U0REQUEST"))
    await harness.runner.submit(late.id)
    release.set()
    async with asyncio.timeout(10):
        await stopping
    assert (await harness.store.get_run(late.id)).status is RunStatus.QUEUED  # left for later
    stopped = await harness.store.get_run(run.id)
    assert stopped.status is RunStatus.RUNNING  # not killed, not failed: to be resumed
    saved = Checkpoint.model_validate_json(await harness.store.load_checkpoint(run.id) or b"{}")
    last = saved.conversations["s1"][-1]["content"]
    assert last[0]["type"] == "tool_result" and "migrated" in last[0]["content"]

    await harness.control.kill(late.id, by="U0ADMIN")  # only the interrupted run resumes below
    anthropic.enqueue(text_reply("database a migrated"))
    done = await harness.recovered(run.id)
    assert done.status is RunStatus.COMPLETED
    assert calls == [{"db": "a"}]  # the tool ran once, before the shutdown
