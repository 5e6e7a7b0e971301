"""The cluster harness end to end: goals posted to a front end, run by a worker, one of them
only after an Approve click, every run completed with exactly its one tool call."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_core.models import RunStatus
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
