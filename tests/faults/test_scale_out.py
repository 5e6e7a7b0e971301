"""Scale-out with real processes: Redis, two front ends, workers, the local stand-ins.

A burst of goals goes to both front ends while a worker is SIGKILLed, Redis is restarted
(append-only, so nothing acknowledged is lost) and another worker is SIGTERMed; approvals
are clicked on the front end that did not take the goal. Every run must end completed,
with its one tool call made exactly once and by one worker at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from pathlib import Path

import pytest

from agent_core.models import AuditEvent, Run, RunStatus
from agent_core.testing.anthropic_server import (
    RecordedRequest,
    Reply,
    fault,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.slack_server import RESPONSE_URL
from tests.faults.cluster import ApprovalCard, Cluster, Goal, goal_token, plan_reply
from tests.support import eventually

pytestmark = pytest.mark.processes

GAVE_UP: list[str] = []
"""Goals whose model gave up once (the retry test's model answers the retry)."""
GOALS = 200
RETRIES = 4
"""AIRLOCK_LLM_MAX_RETRIES in the burst-of-errors test: a call fails only after five faults."""
APPROVAL_EVERY = 10


@pytest.mark.timeout(300)  # 200 runs through real processes: minutes on a loaded machine
async def test_a_burst_survives_a_killed_worker_a_redis_restart_and_a_drained_worker(
    tmp_path: Path,
) -> None:
    async with Cluster(
        tmp_path=tmp_path, front_ends=2, workers=2, latency=0.05, max_concurrent_runs=16,
        lease_seconds=2.0, shutdown_grace_seconds=5.0,
    ) as cluster:  # fmt: skip
        goals = await asyncio.gather(
            *(
                cluster.post_goal(i % 2, needs_approval=i % APPROVAL_EVERY == 0)
                for i in range(GOALS)
            )
        )

        # Worker 0 dies while it holds runs and after it asked for an approval; a fresh worker
        # joins. That approval is still answerable: a parked run belongs to no worker.
        await eventually(lambda: _asked_by(cluster, 0), timeout=30, load_scaled=True)
        await eventually(lambda: _holds_runs(cluster, 0), timeout=30, load_scaled=True)
        assert await cluster.kill_worker(0, signal.SIGKILL) == -signal.SIGKILL
        await cluster.start_worker()

        # Redis goes down and comes back in the middle of it all.
        await cluster.restart_redis()

        # Approvals, each clicked on the front end the goal did not come through: some were
        # asked by the worker that was killed, and are still answerable.
        through = {goal.thread_ts: i % 2 for i, goal in enumerate(goals)}
        clicked: set[str] = set()

        def other(card: ApprovalCard) -> int:  # not the front end the goal came through
            return 1 - through.get(card.thread_ts or "", 1)

        async def approve_what_is_asked() -> None:
            await cluster.approve_new_cards(clicked, other)

        async def asked_and_approved(count: int) -> bool:
            await approve_what_is_asked()
            return len(clicked) >= count

        await eventually(
            lambda: asked_and_approved(GOALS // APPROVAL_EVERY // 2), timeout=60, load_scaled=True
        )

        # Worker 1 is asked to stop: its runs are handed over and it exits cleanly.
        assert await cluster.kill_worker(1, signal.SIGTERM, timeout=30) == 0

        async def all_over() -> bool:
            await approve_what_is_asked()  # a call asked again after the kill is, too
            runs = await cluster.runs()
            return len(runs) == GOALS and all(run.status.is_final for run in runs)

        await eventually(all_over, timeout=120, interval=0.1, load_scaled=True)
        runs = await cluster.wait_all_final(GOALS, timeout=120)
        problems = [await _problem(cluster, run) for run in runs]
        bad = [p for p in problems if p]
        assert not bad, "\n".join(bad)
        assert len(clicked) >= GOALS // APPROVAL_EVERY
        handed = cluster.worker_nodes[1].log.read_text()
        assert "worker stopped" in handed


async def _asked_by(cluster: Cluster, worker: int) -> bool:
    """Whether a pending approval was asked by worker ``worker`` (it claimed the run last)."""
    prefix = cluster.worker_nodes[worker].worker_prefix
    threads = {card.thread_ts for card in await cluster.pending_approval_cards()}
    for run in await cluster.runs():
        if run.thread_ts in threads:
            events = await cluster.store.list_audit(run.id)
            claims = [e.data["worker"] for e in events if e.kind == "run_claimed"]
            if claims and claims[-1].startswith(prefix):
                return True
    return False


async def _holds_runs(cluster: Cluster, worker: int) -> bool:
    holders = [await cluster.lease_holder(run.id) for run in await cluster.runs()]
    prefix = cluster.worker_nodes[worker].worker_prefix
    return any(h is not None and h.startswith(prefix) for h in holders)


async def _problem(cluster: Cluster, run: Run) -> str | None:
    """What is wrong with a finished run of the burst, if anything.

    The model asks for one call per run. It is made once, except that a call its worker was
    killed in the middle of (started, no result recorded) is made again by the next worker
    when the crash rule allows it: ``write_file`` is idempotent, and ``run_command`` (HIGH)
    only after a person approved it again.
    """
    goal: Goal = cluster.goal_of(run)
    if run.status is not RunStatus.COMPLETED:
        return f"{run.id}: {run.status} {run.error}"
    events = await cluster.store.list_audit(run.id)
    calls = [e for e in events if e.kind == "tool_call"]
    trail = [(e.kind, e.data.get("worker"), e.data.get("tool_use_id")) for e in events]
    if len({e.data["tool_use_id"] for e in calls}) != 1:
        return f"{run.id}: the model was asked for more than one call: {trail}"
    for first, again in itertools.pairwise(calls):
        between = events[events.index(first) : events.index(again)]
        if any(e.kind == "tool_result" for e in between):
            return f"{run.id}: a call made again after it finished: {trail}"
        if again.data["tool"] == "run_command" and (
            again.data.get("approval_id") == first.data.get("approval_id")
        ):
            return f"{run.id}: a HIGH call made again without asking again: {trail}"
    if not _one_owner_at_a_time(events):
        return f"{run.id}: a tool call by a worker that did not hold the run: {trail}"
    written = cluster.workspace_file(goal).read_text().split()
    if set(written) != {goal.token} or len(written) > len(calls):
        return f"{run.id}: workspace shows {written} after {len(calls)} call(s)"
    return None


def _one_owner_at_a_time(events: list[AuditEvent]) -> bool:
    """Every tool call was made by the worker that claimed the run last before it."""
    owner = None
    for event in events:
        if event.kind == "run_claimed":
            owner = event.data["worker"]
        elif event.kind == "tool_call" and event.data.get("worker") != owner:
            return False
    return True


async def test_the_model_api_failing_in_bursts_slows_runs_down_and_the_fallback_takes_over(
    tmp_path: Path,
) -> None:
    async with Cluster(
        tmp_path=tmp_path, front_ends=1, workers=2, llm_max_retries=RETRIES,
        extra_env={"AIRLOCK_FALLBACK_MODEL": "claude-haiku-4-5"},
    ) as cluster:  # fmt: skip
        # The primary stays overloaded through every retry of one call: the fallback answers.
        cluster.anthropic.enqueue(*(fault(529, retry_after=0.05) for _ in range(RETRIES + 1)))
        await cluster.post_goal(0)
        (first,) = await cluster.wait_all_final(1, timeout=30)
        assert first.status is RunStatus.COMPLETED
        models = [r.body.get("model") for r in cluster.anthropic.message_requests() if r.body]
        primary = ["claude-opus-4-7"] * (RETRIES + 1)  # the planner's model, then the fallback
        assert models[: RETRIES + 2] == [*primary, "claude-haiku-4-5"], models

        # Bursts of every kind of failure while 20 runs go: they retry, and all complete.
        for status in (529, 500, 429, 529, 500, 429, 500, 529, 429, 500):
            cluster.anthropic.enqueue(fault(status, retry_after=0.05))
        await asyncio.gather(*(cluster.post_goal(0) for _ in range(20)))
        runs = await cluster.wait_all_final(21, timeout=60)
        assert {run.status for run in runs} == {RunStatus.COMPLETED}
        assert cluster.anthropic.pending == 0  # every fault was served


def retried_step(request: RecordedRequest) -> Reply:
    """Two approved commands, a write the workspace refuses, the model giving up; after a
    retry, its answer."""
    token = goal_token(request)
    planned = plan_reply(request, token)
    if planned is not None:
        return planned
    answered = sum(
        1
        for message in request.messages
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    )
    if answered < 2:
        step = ("one", "two")[answered]
        return tool_use_reply("run_command", {"command": f"echo {step} >> runs/{token}.log"})
    if answered == 2:
        return tool_use_reply("write_file", {"path": "/etc/airlock-cannot", "content": "x"})
    GAVE_UP.append(token)  # the first time; asked again on the retry, it finishes
    if GAVE_UP.count(token) == 1:
        return text_reply("the write was refused; I cannot finish", stop_reason="refusal")
    return text_reply(f"done {token} on the second attempt")


async def test_a_run_failed_after_two_approved_calls_is_retried_without_making_them_again(
    tmp_path: Path,
) -> None:
    async with Cluster(tmp_path=tmp_path, front_ends=2, workers=2) as cluster:
        cluster.anthropic.set_default(retried_step)
        goal = await cluster.post_goal(0)
        clicked: set[str] = set()

        async def failed() -> bool:
            await cluster.approve_new_cards(clicked, lambda card: 1)
            runs = await cluster.runs()
            return bool(runs) and runs[0].status is RunStatus.FAILED

        await eventually(failed, timeout=60, load_scaled=True)
        (run,) = await cluster.runs()
        assert "declined" in (run.error or "") and len(clicked) == 2

        async def worker_let_go() -> bool:  # it acknowledges a moment after the status
            return await cluster.queue_depth() == (0, 0)

        await eventually(worker_let_go, timeout=10, load_scaled=True)
        since = len(cluster.slack.calls)
        assert await cluster.slash_command(0, "status") == 200
        status = await cluster.slack.wait_for_call(RESPONSE_URL, since=since, timeout=10)
        assert "Queue: 0 run(s) waiting for a worker, 0 held by one." in status.args["text"]

        assert await cluster.slash_command(1, f"retry {run.id}") == 200

        async def retried() -> bool:  # the 200 comes first: until then the run is still failed
            (again,) = await cluster.runs()
            return again.attempt == 2 and again.status.is_final

        await eventually(retried, timeout=60, load_scaled=True)
        (done,) = await cluster.runs()
        assert done.status is RunStatus.COMPLETED and done.attempt == 2, done.error
        calls = [e.data for e in await cluster.audit_tool_calls(run.id)]
        assert [c["tool"] for c in calls] == ["run_command", "run_command", "write_file"]
        log = (cluster.workspace_file(goal).parent / f"{goal.token}.log").read_text()
        assert log.split() == ["one", "two"]  # each approved command ran once
        said = [c.args.get("text", "") for c in cluster.slack.calls]
        assert any("(attempt 2)" in text for text in said)


def asks_first(request: RecordedRequest) -> Reply:
    """Asks the requester a question, then finishes with the answer."""
    token = goal_token(request)
    planned = plan_reply(request, token, ("ask_human",))
    if planned is not None:
        return planned
    results = request.tool_results()
    if results:
        return text_reply(f"painted it {json.dumps(results[0].get('content'))}")
    return tool_use_reply("ask_human", {"question": "Which colour?"})


async def test_a_question_asked_by_a_worker_is_answered_through_a_front_end(
    tmp_path: Path,
) -> None:
    async with Cluster(tmp_path=tmp_path, front_ends=1, workers=1) as cluster:
        cluster.anthropic.set_default(asks_first)
        goal = await cluster.post_goal(0)
        asked = await cluster.slack.wait_for_call(
            "chat.postMessage", lambda c: ":question:" in c.args.get("text", ""), timeout=30
        )
        assert asked.args["thread_ts"] == goal.thread_ts
        assert await cluster.reply_in_thread(0, goal.thread_ts, "teal, please") == 200
        (done,) = await cluster.wait_all_final(1, timeout=30)
        assert done.status is RunStatus.COMPLETED, done.error
        assert "teal, please" in done.results["s1"].output


async def test_a_halt_typed_on_one_front_end_stops_the_runs_of_every_worker(
    tmp_path: Path,
) -> None:
    admin = "U0ADMIN0001"
    async with Cluster(
        tmp_path=tmp_path, front_ends=2, workers=2, latency=1.0, max_concurrent_runs=4,
        extra_env={"AIRLOCK_ADMINS": admin},
    ) as cluster:  # fmt: skip
        await asyncio.gather(*(cluster.post_goal(i % 2) for i in range(8)))

        async def both_workers_busy() -> bool:
            holders = {await cluster.lease_holder(run.id) for run in await cluster.runs()}
            prefixes = [node.worker_prefix for node in cluster.worker_nodes]
            return all(any(h and h.startswith(p) for h in holders) for p in prefixes)

        await eventually(both_workers_busy, timeout=30, load_scaled=True)
        assert await cluster.slash_command(1, "halt maintenance", user=admin) == 200
        runs = await cluster.wait_all_final(8, timeout=30)
        assert {run.status for run in runs} == {RunStatus.KILLED}

        async def let_go() -> bool:
            return all([await cluster.lease_holder(run.id) is None for run in runs])

        await eventually(
            let_go, timeout=10, load_scaled=True
        )  # every worker stopped its runs and let go
        await cluster.post_goal(0)  # refused while halted: no new run
        assert len(await cluster.runs()) == 8
        for run in runs:  # nothing ran after the kill (written by the halt or by the worker)
            kinds = [e.kind for e in await cluster.store.list_audit(run.id)]
            ended = min(i for i, k in enumerate(kinds) if k in ("run_killed", "run_finished"))
            assert "tool_call" not in kinds[ended:]
