"""`airlock demo` as a real process, offline, with no Slack or Anthropic settings at all."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.e2e.test_serve import clean_env
from tests.support import within

pytestmark = pytest.mark.processes


async def demo(*args: str, cwd: Path, keys: str = "") -> tuple[int, str]:
    """Run `airlock demo`, typing ``keys`` at its prompts; the exit code and the output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", *args, cwd=cwd, env=clean_env(COLUMNS="200"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with within(100):
        out, _ = await process.communicate(keys.encode())
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_auto_plays_the_scenario_through(tmp_path: Path) -> None:
    code, out = await demo("--auto", cwd=tmp_path)
    assert code == 0, out
    assert "The model's replies are scripted (no API key needed)" in out
    assert "[scripted model] calls run_command './restart-staging.sh web'" in out
    assert "┃ Approval needed: high risk" in out and "┃ *run_command* 🟠 HIGH" in out
    choices = "1) Approve  2) Reject  3) Reject with reason…  4) Edit…  "
    # run_command is never grantable: one approved command says nothing of the next.
    assert choices + "5) Kill run" in out and "for this run" not in out
    # The command really ran in the workspace, after the click, and its output reached the model.
    assert out.index("approved by @you") < out.index("restarting web-2 ... ok")
    assert "goal 1 ended: completed" in out
    recalled = out.split("memories recalled into the planner's prompt:", 1)[1]
    assert "procedural, just now] Staging web restarts go through ./restart-staging.sh" in recalled
    assert "From this channel's memory: Staging web restarts go through" in recalled
    assert "goal 2 ended: completed" in out and "Traceback" not in out


async def test_a_rejection_with_a_reason_reaches_the_run_and_the_next_goal(tmp_path: Path) -> None:
    # Plan card: 3) Reject with reason…, then the modal's one field.
    code, out = await demo(cwd=tmp_path, keys="3\nnot during the release freeze\n")
    assert code == 0, out
    assert "┌ modal: Reject" in out
    assert "rejected by @you" in out and ": not during the release freeze" in out
    assert "goal 1 ended: rejected" in out
    assert "[scripted model] calls run_command" not in out  # nothing ran after the rejection
    second = out.split("goal 2", 1)[1]
    assert "Outcome: rejected: plan rejected by W111: not during the release freeze" in second
    assert "Nothing this channel remembers says how" in second
    assert "goal 2 ended: completed" in out
