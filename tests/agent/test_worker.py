"""Workers on a real Redis: the queue, leases, takeover, fencing, hand-over and decisions.

Each "process" here is a store client and a worker of its own on one Redis server, in one
event loop, so the tests can pause a worker's lease renewals (as a paused or partitioned
process would) and look at both sides. The fault tests start real processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from agent_core.approvals import Authority, DecisionService
from agent_core.audit.trail import Audit
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.models import (
    FINAL_STATUSES,
    Decision,
    DecisionKind,
    Run,
    RunStatus,
)
from agent_core.runs.claims import Claims, LocalClaims, worker_name
from agent_core.runs.host import RunHost
from agent_core.runs.leased import LeasedClaims
from agent_core.runs.orchestrator import Orchestrator
from agent_core.store import Store, open_store
from agent_core.store.redis import RedisStore
from agent_core.store.run_queue import RedisRunQueue
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.channel import RecordingChannel
from bot.cli.audit import describe
from tests.agent.conftest import Tools, policy
from tests.support import eventually


def plan(tool: str, risk: str = "low") -> Reply:
    subtask = {"id": "s1", "description": f"use {tool}", "required_tools": [tool],
               "depends_on": [], "risk_level": risk}  # fmt: skip
    return tool_use_reply("submit_plan", {"subtasks": [subtask]})


@dataclass
class Model:
    """Answers every run the same way, from its conversation: plan, one call, done."""

    tool: str = "lookup"
    risk: str = "low"
    slow_first_call: float = 0.0
    """Latency of the first executor turn (a worker can be paused during it)."""
    executor_turns: int = 0

    def __call__(self, request: RecordedRequest) -> Reply:
        body = request.body or {}
        if (body.get("tool_choice") or {}).get("name") == "submit_plan":
            return plan(self.tool, self.risk)
        if request.tool_results():
            return text_reply("all done")
        self.executor_turns += 1
        latency = self.slow_first_call if self.executor_turns == 1 else 0.0
        return tool_use_reply(self.tool, {"target": "web"}, latency=latency)


@dataclass(kw_only=True)
class Process:
    """One worker process: its own store client, channel and run host."""

    store: Store
    channel: RecordingChannel
    worker: RunHost
    service: DecisionService
    queue: RedisRunQueue

    def pause(self) -> None:
        """Stop renewing leases, reading and claiming, as a process paused or cut off from
        Redis would; only what is in flight (a model call) carries on when it answers."""
        claims = self.worker.claims
        assert isinstance(claims, LeasedClaims)
        for task in claims._loops:
            task.cancel()


@dataclass(kw_only=True)
class Cluster:
    url: str
    llm: AnthropicLLM
    tools: Tools
    workspace: Path
    stack: AsyncExitStack
    processes: list[Process] = field(default_factory=list)

    async def process(
        self, *, slots: int = 4, lease_seconds: float = 1.0, reads: bool = True
    ) -> Process:
        store = await open_store(self.url, poll_interval=0.02)
        self.stack.push_async_callback(store.close)
        assert isinstance(store, RedisStore)
        channel = RecordingChannel()
        run_policy = policy()
        orchestrator = Orchestrator(store=store, llm=self.llm, tools=self.tools.registry,
                                    channel=channel, policy=run_policy,
                                    workspace=self.workspace)  # fmt: skip
        queue = store.run_queue()
        claims: Claims = (
            LeasedClaims(queue=queue, store=store, slots=slots, lease_seconds=lease_seconds)
            if reads  # else a terminal's `airlock run`: just the runs submitted to it
            else LocalClaims(store=store, name=worker_name(terminal=True), everything=False,
                             lease_seconds=lease_seconds)
        )  # fmt: skip
        worker = RunHost(store=store, orchestrator=orchestrator, channel=channel,
                         policy=run_policy.approvals, claims=claims)  # fmt: skip
        authority = Authority(approvers=["U0APPROVER"], admins=["U0ADMIN"])
        service = DecisionService(store=store, authority=authority, audit=Audit(store=store))
        await worker.start()
        self.stack.push_async_callback(worker.stop)
        process = Process(store=store, channel=channel, worker=worker, service=service,
                          queue=queue)  # fmt: skip
        self.processes.append(process)
        return process

    async def goal(self, via: Process, goal: str = "check the web tier") -> Run:
        """What a front end does: create the run, queue it."""
        run = await via.store.create_run(Run(goal=goal, requester="U0REQUEST"))
        await via.worker.submit(run.id)
        return run

    async def final(self, via: Process, run_id: str, timeout: float = 30) -> Run:
        async def over() -> bool:
            return (await via.store.get_run(run_id)).status in FINAL_STATUSES

        await eventually(over, timeout=timeout)
        return await via.store.get_run(run_id)


@pytest.fixture
async def cluster(
    redis_store_url: str, llm: AnthropicLLM, tools: Tools, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with AsyncExitStack() as stack:
        yield Cluster(url=redis_store_url, llm=llm, tools=tools, workspace=tmp_path, stack=stack)


def kinds(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.kind == kind]


async def test_queued_runs_are_shared_out_and_each_is_worked_on_once(
    cluster: Cluster, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.set_default(Model())
    a = await cluster.process(slots=2)
    b = await cluster.process(slots=2)
    runs = [await cluster.goal(a, f"check host {i}") for i in range(12)]
    finished = [await cluster.final(a, run.id) for run in runs]
    assert {run.status for run in finished} == {RunStatus.COMPLETED}
    assert len(tools.calls) == 12  # one lookup per run, none twice
    owners = {run.owner for run in finished}
    assert owners <= {a.worker.name, b.worker.name} and len(owners) == 2  # both took a share
    for run in finished:
        events = await a.store.list_audit(run.id)
        assert [e.data["worker"] for e in kinds(events, "run_claimed")] == [run.owner]
        assert [e.data["worker"] for e in kinds(events, "tool_call")] == [run.owner]
        shown = [describe(e) for e in kinds(events, "run_claimed") + kinds(events, "tool_call")]
        assert shown[0].startswith(f"taken up by {run.owner} (queued, attempt 1)")
        assert shown[1].endswith(f", on {run.owner}")  # `airlock audit show` says where
    waiting, working = await a.queue.depth()
    assert (waiting, working) == (0, 0)  # every entry was acknowledged and deleted


async def test_a_worker_that_stops_renewing_loses_the_run_and_cannot_touch_it_again(
    cluster: Cluster, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    """Takeover after the lease runs out, and fencing: the old owner's late model answer
    leads to no tool call and no write."""
    anthropic.set_default(Model(slow_first_call=3.0))
    a = await cluster.process(lease_seconds=0.6)
    run = await cluster.goal(a)
    await eventually(lambda: _owned_by(a, run.id))
    a.pause()  # A is now "paused" inside its slow model call
    claimed_before = _worker_runs("claimed")
    b = await cluster.process(lease_seconds=0.6)

    done = await cluster.final(b, run.id)
    assert done.status is RunStatus.COMPLETED and done.owner == b.worker.name
    # A's model call returns; it must find the run is B's, run nothing and write nothing.
    await eventually(lambda: _idle(a), timeout=10)
    assert [c[0] for c in tools.calls] == ["lookup"]
    after = await b.store.get_run(run.id)
    assert after.version == done.version and after.status is RunStatus.COMPLETED
    events = await b.store.list_audit(run.id)
    assert [e.data["worker"] for e in kinds(events, "run_claimed")] == [
        a.worker.name, b.worker.name
    ]  # fmt: skip
    assert [e.data["worker"] for e in kinds(events, "tool_call")] == [b.worker.name]
    assert _worker_runs("claimed") == claimed_before + 1


def _worker_runs(event: str) -> float:
    return REGISTRY.get_sample_value("airlock_worker_runs_total", {"event": event}) or 0.0


async def test_a_worker_shutting_down_hands_its_run_over_at_once(
    cluster: Cluster, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.set_default(Model(slow_first_call=2.0))
    a = await cluster.process(lease_seconds=30)  # a takeover would take 30 s: this must not
    run = await cluster.goal(a)
    await eventually(lambda: _owned_by(a, run.id))
    b = await cluster.process(lease_seconds=30)
    await a.worker.stop(grace_seconds=0.1)  # the model call outlasts the grace: cancelled

    done = await cluster.final(b, run.id, timeout=15)
    assert done.status is RunStatus.COMPLETED and done.owner == b.worker.name
    assert [c[0] for c in tools.calls] == ["lookup"]


async def test_a_decision_made_in_another_process_resumes_the_parked_run_once(
    cluster: Cluster, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    anthropic.set_default(Model(tool="restart", risk="high"))
    a = await cluster.process()
    b = await cluster.process()
    run = await cluster.goal(a)
    decided: list[str] = []  # the plan, then the call

    async def asking_or_over() -> bool:
        run_now = await a.store.get_run(run.id)
        asked = await a.store.list_pending_approvals(run_id=run.id)
        parked = run_now.status is RunStatus.AWAITING_APPROVAL
        released = await a.queue.holder(run.id) is None  # a parked run holds no lease
        new = any(x.id not in decided for x in asked)
        return run_now.status in FINAL_STATUSES or (parked and released and new)

    while (await a.store.get_run(run.id)).status not in FINAL_STATUSES:
        await eventually(asking_or_over)
        for approval in await a.store.list_pending_approvals(run_id=run.id):
            decision = Decision(kind=DecisionKind.APPROVE, by="U0APPROVER")
            await b.service.decide(approval.id, decision)
            decided.append(approval.id)

    done = await cluster.final(a, run.id)
    assert done.status is RunStatus.COMPLETED
    assert [c[0] for c in tools.calls] == ["restart"]
    settled = [e for p in cluster.processes for e in p.channel.kinds() if e == "approval_settled"]
    assert len(settled) == len(decided) == 2  # one process told people of each, not both


async def test_a_run_that_was_created_but_never_queued_is_found_and_run(
    cluster: Cluster, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    """A front end that died between creating a run and queueing it loses nothing."""
    anthropic.set_default(Model())
    a = await cluster.process(lease_seconds=0.5)
    run = await a.store.create_run(Run(goal="check the web tier", requester="U0REQUEST"))
    done = await cluster.final(a, run.id, timeout=15)
    assert done.status is RunStatus.COMPLETED
    assert [c[0] for c in tools.calls] == ["lookup"]


async def _owned_by(process: Process, run_id: str) -> bool:
    return await process.queue.holder(run_id) == process.worker.name


async def _idle(process: Process) -> bool:
    return not process.worker.tasks


async def test_a_run_worked_on_at_a_terminal_is_left_alone_by_the_workers(
    cluster: Cluster, anthropic: AnthropicStandIn, tools: Tools
) -> None:
    """`airlock run` with a Redis store holds a lease too: a worker's sweep, which takes up
    runs nobody holds, does not take a terminal's run in the middle of a long model call."""
    anthropic.set_default(Model(slow_first_call=2.5))  # longer than the sweep's 3 leases
    terminal = await cluster.process(lease_seconds=0.5, reads=False)
    worker = await cluster.process(lease_seconds=0.5)
    run = await terminal.store.create_run(Run(goal="check the web tier", requester="local:me"))
    assert await terminal.worker.submit(run.id)
    assert isinstance(worker.worker.claims, LeasedClaims)
    assert await worker.worker.claims.holds.take(run.id) is None  # held: nobody else may

    done = await cluster.final(terminal, run.id)
    assert done.status is RunStatus.COMPLETED and done.owner == terminal.worker.name
    assert [c[0] for c in tools.calls] == ["lookup"]
    events = await terminal.store.list_audit(run.id)
    assert {e.data["worker"] for e in kinds(events, "run_claimed")} == {terminal.worker.name}
