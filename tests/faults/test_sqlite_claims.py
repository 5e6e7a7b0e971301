"""Two processes on one SQLite file never work on the same run at once: `airlock serve` and an
`airlock run --resume` at the shell each take the run's lease in the store, the one that
finds it held leaves the run alone, and it takes the run up once the holder is gone."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agent_core.models import Run, RunStatus
from agent_core.store import Store, open_store
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_server import SlackStandIn
from tests.attacks.test_bad_input import one_line, started
from tests.e2e.test_serve import airlock, clean_env
from tests.support import TEST_AUDIT_KEY, airlock_serve, eventually, load_factor, within

pytestmark = pytest.mark.processes

TOKEN = "xoxb-sqlite-claims"
KEY = "sk-ant-sqlite-claims"
PLAN = {"subtasks": [{"id": "s1", "description": "look", "required_tools": [],
                      "depends_on": [], "risk_level": "low"}]}  # fmt: skip


@asynccontextmanager
async def model(release: asyncio.Event) -> AsyncIterator[AnthropicStandIn]:
    """Plans one step, then "thinks" until ``release`` (whoever asked is killed meanwhile);
    the step's answer goes to whoever asks next."""

    async def slow(request: RecordedRequest) -> Reply:
        await release.wait()
        return text_reply("never delivered")

    script = [tool_use_reply("submit_plan", PLAN), slow, text_reply("looked")]
    async with AnthropicStandIn(api_key=KEY, script=script) as server:
        try:
            yield server
        finally:
            release.set()


def environment(data: Path, anthropic: AnthropicStandIn, slack: SlackStandIn) -> dict[str, str]:
    # A lease long enough to outlast a busy machine's pauses, short enough to lapse quickly.
    return clean_env(
        SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET="sqlite-claims-secret",
        SLACK_API_URL=slack.api_url, ANTHROPIC_API_KEY=KEY,
        ANTHROPIC_BASE_URL=anthropic.base_url, AIRLOCK_DATA_DIR=str(data),
        AIRLOCK_PORT=str(free_port()), AIRLOCK_LLM_MAX_RETRIES="0",
        AIRLOCK_SIGNAL_POLL_SECONDS="0.05", AIRLOCK_SHUTDOWN_GRACE_SECONDS="0",
        AIRLOCK_LEASE_SECONDS=str(round(4 * load_factor())), COLUMNS="200",
    )  # fmt: skip


async def sqlite(data: Path) -> Store:
    return await open_store(f"sqlite:///{data / 'airlock.db'}", audit_key=TEST_AUDIT_KEY)


async def claimed_by(store: Store, run_id: str) -> list[str]:
    return [e.data["worker"] for e in await store.list_audit(run_id) if e.kind == "run_claimed"]


async def test_the_shell_leaves_a_run_serve_works_on_and_takes_it_over_when_serve_dies(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    store = await sqlite(data)
    run = await store.create_run(Run(goal="look around", requester="U0SHELL"))
    release = asyncio.Event()
    try:
        async with SlackStandIn(bot_token=TOKEN) as slack, model(release) as anthropic:
            env = environment(data, anthropic, slack)
            async with airlock_serve(env, tmp_path, int(env["AIRLOCK_PORT"])) as serve:

                async def thinking() -> bool:
                    return len(anthropic.message_requests()) == 2

                await eventually(thinking, timeout=30, load_scaled=True)
                line = one_line(*await airlock("run", "--resume", run.id, cwd=tmp_path, env=env))
                assert re.fullmatch(
                    rf"airlock: --resume {run.id}: held by \S+ until \d\d:\d\d:\d\d UTC"
                    r" \(in \d+ s\), .* add --wait to take it over then",
                    line,
                ), line
                assert len(anthropic.message_requests()) == 2  # the shell did not ask the model
                serve.send_signal(signal.SIGKILL)
                await serve.wait()
            code, out, err = await airlock("run", "--resume", run.id, "--wait", cwd=tmp_path,
                                           env=env)  # fmt: skip
            asked = len(anthropic.message_requests())
        done = await store.get_run(run.id)
        pending = await store.list_pending_approvals(run_id=run.id)
        holders = await claimed_by(store, run.id)
    finally:
        await store.close()
    assert code == 0, out + err
    assert "looked" in out and "completed" in out
    assert done.status is RunStatus.COMPLETED and not pending
    assert asked == 3  # the plan, the call serve never got an answer to, and the shell's
    assert len(holders) == 2 and holders[1].startswith("terminal-") and holders[0] != holders[1]


async def test_serve_leaves_a_run_the_shell_works_on_and_takes_it_over_when_the_shell_dies(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    release = asyncio.Event()
    store = await sqlite(data)
    try:
        async with SlackStandIn(bot_token=TOKEN) as slack, model(release) as anthropic:
            env = environment(data, anthropic, slack)
            async with started("run", "look around", cwd=tmp_path, env=env) as (shell, run_id):

                async def thinking() -> bool:
                    return len(anthropic.message_requests()) == 2

                await eventually(thinking, timeout=30, load_scaled=True)
                async with airlock_serve(env, tmp_path, int(env["AIRLOCK_PORT"])):

                    async def serving() -> bool:
                        return any(c.method == "auth.test" for c in slack.calls)

                    await eventually(serving, timeout=30, load_scaled=True)
                    shell.send_signal(signal.SIGKILL)
                    await shell.wait()

                    async def finished() -> bool:
                        return (await store.get_run(run_id)).status.is_final

                    await eventually(finished, timeout=60, load_scaled=True)
            asked = len(anthropic.message_requests())
        done = await store.get_run(run_id)
        pending = await store.list_pending_approvals(run_id=run_id)
        holders = await claimed_by(store, run_id)
    finally:
        await store.close()
    assert done.status is RunStatus.COMPLETED and not pending, done
    assert asked == 3
    # The shell held it first; serve took it only once the shell's lease had lapsed.
    assert len(holders) == 2 and holders[0].startswith("terminal-"), holders
    assert not holders[1].startswith("terminal-")


async def test_a_lease_whose_process_ended_is_taken_at_once_and_a_live_ones_is_not(
    tmp_path: Path,
) -> None:
    """On one machine's SQLite file a holder that died needs no waiting for its lease to
    lapse (a restarted `airlock serve` resumes at once); one still running keeps its run."""
    data = tmp_path / "data"
    store = await sqlite(data)
    take = (
        "import asyncio, sys\n"
        "from agent_core.store import open_store\n"
        "async def main():\n"
        f"    store = await open_store('sqlite:///{data / 'airlock.db'}')\n"
        "    lease = await store.take_lease(sys.argv[1], holder='serve-gone', ttl_seconds=600)\n"
        "    assert lease is not None\n"
        "    await store.close()\n"
        "    print('held', flush=True)\n"
        "    if sys.argv[2] == 'stay':\n"
        "        await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    env = clean_env()
    pipe = asyncio.subprocess.PIPE
    gone = await asyncio.create_subprocess_exec(
        sys.executable, "-c", take, "run_gone", "exit", env=env, stdout=pipe
    )
    staying = await asyncio.create_subprocess_exec(
        sys.executable, "-c", take, "run_live", "stay", env=env, stdout=pipe
    )
    try:
        assert staying.stdout is not None
        async with within(60):
            assert await gone.wait() == 0
            assert (await staying.stdout.readline()).strip() == b"held"
        held = await store.lease_holder("run_gone")
        assert held is not None and held[0] == "serve-gone"  # it would hold for 10 minutes
        taken = await store.take_lease("run_gone", holder="serve-new", ttl_seconds=60)
        assert taken is not None and taken.owner == "serve-new"
        assert await store.take_lease("run_live", holder="serve-new", ttl_seconds=60) is None
    finally:
        if staying.returncode is None:
            staying.kill()
        await staying.wait()
        await store.close()
