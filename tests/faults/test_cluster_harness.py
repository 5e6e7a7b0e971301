"""The cluster harness end to end: goals posted to a front end, run by a worker, one of them
only after an Approve click, every run completed with exactly its one tool call."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from agent_core.models import RunStatus
from agent_core.testing.redis_server import free_port
from tests.faults import cluster as cluster_module
from tests.faults.cluster import Cluster

pytestmark = pytest.mark.processes


async def test_five_goals_one_needing_approval_all_complete(tmp_path: Path) -> None:
    async with Cluster(tmp_path=tmp_path, front_ends=1, workers=1) as cluster:
        goals = [await cluster.post_goal(0, needs_approval=i == 2) for i in range(5)]

        [pending] = await cluster.wait_for_cards(1, timeout=20)
        assert await cluster.click_approve(0, pending.approval_id, pending.message_ts) == 200

        runs = await cluster.wait_all_final(5, timeout=20)
        assert len(runs) == 5
        for run in runs:
            assert run.status is RunStatus.COMPLETED, (run.id, run.status, run.error)
            goal = cluster.goal_of(run)
            calls = await cluster.audit_tool_calls(run.id)
            wanted = "run_command" if goal.needs_approval else "write_file"
            assert [c.data.get("tool") for c in calls] == [wanted]
            assert cluster.workspace_file(goal).read_text().strip() == goal.token
        assert pending.thread_ts == goals[2].thread_ts
        assert not await cluster.pending_approval_cards()


async def test_a_node_whose_port_another_process_took_starts_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parallel test's process takes the port picked for a worker, and even answers its
    /healthz: the harness must not take that process for the worker."""

    async def healthy(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    impostor = web.Application()
    impostor.router.add_get("/healthz", healthy)
    runner = web.AppRunner(impostor)
    await runner.setup()
    taken = free_port()
    site = web.TCPSite(runner, "127.0.0.1", taken)
    await site.start()
    ports = iter([taken])
    monkeypatch.setattr(cluster_module, "free_port", lambda: next(ports, None) or free_port())
    try:
        async with Cluster(tmp_path=tmp_path, front_ends=0, workers=1) as cluster:
            [worker] = cluster.worker_nodes
            assert worker.port != taken and worker.running
            assert cluster_module.listens(worker.process.pid, worker.port)
            assert not cluster_module.listens(worker.process.pid, taken)
    finally:
        await runner.cleanup()
