"""What is stored for a run holds no secret, and a run resumed from it still works.

The run's record and its checkpoint are masked as they are written: a secret typed in a goal
never reaches the model (the planner reads the stored goal), and after a park for approval
the conversation goes on with every secret a tool returned masked, valid as a conversation,
while the approved call runs with exactly the arguments that were approved.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from agent_core.models import Approval, Decision, DecisionKind, PlanSubject, RiskLevel, RunStatus
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.channel import RecordingChannel
from agent_core.testing.secret_samples import SAMPLES
from agent_core.tools import ToolRegistry
from tests.agent.conftest import Harness, Tools, text_tool

EVERY_SECRET = "\n".join(s.text for s in SAMPLES)


def leaked(text: str) -> list[str]:
    return [s.kind for s in SAMPLES if s.needle in text]


def plans_only(approval: Approval) -> Decision | None:
    """Approves plans at once; leaves tool calls waiting for the test to decide."""
    if isinstance(approval.subject, PlanSubject):
        return Decision(kind=DecisionKind.APPROVE, by="U0ADMIN")
    return None


def answered(messages: list[dict[str, Any]]) -> bool:
    """Whether every tool_use in ``messages`` has its tool_result in the next message."""

    def blocks(message: dict[str, Any] | None) -> list[dict[str, Any]]:
        content = None if message is None else message["content"]
        return content if isinstance(content, list) else []

    for turn, reply in zip(messages, [*messages[1:], None], strict=True):
        uses = {b["id"] for b in blocks(turn) if b.get("type") == "tool_use"}
        if not uses <= {b.get("tool_use_id") for b in blocks(reply)}:
            return False
    return True


async def test_a_run_resumed_from_its_masked_checkpoint_goes_on(
    harness_factory: Callable[..., Awaitable[Harness]], anthropic: AnthropicStandIn, tools: Tools
) -> None:
    calls: list[dict[str, Any]] = []

    def deploy(arguments: dict[str, Any]) -> str:
        calls.append(arguments)
        return "deployed"

    registry = ToolRegistry([
        text_tool("read_creds", RiskLevel.LOW, lambda _: EVERY_SECRET),
        text_tool("deploy", RiskLevel.HIGH, deploy),
    ])  # fmt: skip
    channel = RecordingChannel(decider=plans_only)
    harness = await harness_factory(channel=channel, registry=registry)
    plan = {
        "subtasks": [
            {
                "id": "s1",
                "description": "deploy",
                "depends_on": [],
                "required_tools": ["read_creds", "deploy"],
                "risk_level": "high",
            }
        ]
    }
    anthropic.enqueue(
        tool_use_reply("submit_plan", plan),
        tool_use_reply("read_creds", {"target": "prod"}),
        tool_use_reply("deploy", {"target": "web-7Hq2"}),
        text_reply("deployed web"),
    )  # fmt: skip
    run = await harness.start("deploy web to prod with\n" + EVERY_SECRET)
    assert leaked((await harness.store.get_run(run.id)).model_dump_json()) == []
    async with asyncio.timeout(30):
        await channel.wait_for(lambda c: any(a.subject.kind == "tool_call" for a in c.asked))
    parked = await harness.parked(run.id)
    assert parked.status is RunStatus.AWAITING_APPROVAL
    checkpoint = await harness.store.load_checkpoint(run.id)
    assert checkpoint is not None and b"[redacted]" in checkpoint
    assert leaked(checkpoint.decode()) == []
    [asked] = [a for a in channel.asked if not isinstance(a.subject, PlanSubject)]
    await harness.service.decide(asked.id, Decision(kind=DecisionKind.APPROVE, by="U0ADMIN"))
    async with asyncio.timeout(30):
        done = await harness.runner.wait_for(run.id, {RunStatus.COMPLETED, RunStatus.FAILED})
    assert done.status is RunStatus.COMPLETED, done.error
    assert calls == [{"target": "web-7Hq2"}]  # the approved call, exactly, once
    requests = anthropic.message_requests()
    assert leaked(json.dumps(requests[0].body)) == []  # the planner never saw the goal's secrets
    resumed = requests[-1].messages  # the turn after the resume, from the stored checkpoint
    assert answered(resumed) and "[redacted]" in json.dumps(resumed)
    assert leaked(json.dumps(resumed)) == []
