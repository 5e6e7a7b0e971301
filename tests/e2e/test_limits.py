"""Limits through the real `airlock serve` and `airlock run`: the hourly limit and a spent
daily budget refuse a goal with a clear message, and a goal beyond the concurrency limit is
shown its place in line."""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agent_core.audit.trail import GLOBAL
from agent_core.runs.limits import SpendLedger
from agent_core.store import open_store
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_requests import SlackRequestSigner, post_to_bot
from agent_core.testing.slack_server import SlackCall, SlackStandIn
from tests.e2e.test_run_cli import airlock_run
from tests.e2e.test_serve import clean_env
from tests.e2e.test_slack_goals import KEY, MENTION, SECRET, TOKEN, Bot
from tests.support import airlock_serve

pytestmark = pytest.mark.processes

PLAN = tool_use_reply("submit_plan", {"subtasks": [
    {"id": "s1", "description": "look", "required_tools": [], "depends_on": [],
     "risk_level": "low"}]})  # fmt: skip


@asynccontextmanager
async def serving(tmp_path: Path, **limits: str) -> AsyncIterator[Bot]:
    """`airlock serve` with these limit settings, its Slack and Anthropic stand-ins, its store."""
    port, data = free_port(), tmp_path / "data"
    async with SlackStandIn(bot_token=TOKEN) as slack, AnthropicStandIn(api_key=KEY) as anthropic:
        env = clean_env(
            SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=anthropic.base_url,
            AIRLOCK_DATA_DIR=str(data), AIRLOCK_PORT=str(port), AIRLOCK_LLM_MAX_RETRIES="0",
            **limits,
        )  # fmt: skip
        async with airlock_serve(env, tmp_path, port):
            store = await open_store(f"sqlite:///{data / 'airlock.db'}")
            try:
                url = f"http://127.0.0.1:{port}/slack/events"
                yield Bot(url=url, slack=slack, anthropic=anthropic, store=store,
                          signer=SlackRequestSigner(SECRET))  # fmt: skip
            finally:
                await store.close()


async def mention(bot: Bot, user: str, ts: str) -> None:
    """``user`` mentions the bot with a goal, in a new thread at ``ts``."""
    payload = copy.deepcopy(MENTION)
    payload["event"].update(user=user, ts=ts, event_ts=ts, text="<@W111> check the disks")
    payload["event_id"] = "Ev" + ts.replace(".", "")
    assert (await post_to_bot(bot.url, bot.signer.event(payload)))[0] == 200


def in_thread(ts: str, text: str) -> Callable[[SlackCall], bool]:
    """A message (or the start of a streamed answer) in the thread ``ts`` saying ``text``."""
    return lambda call: (
        call.args.get("thread_ts") == ts
        and text in (call.args.get("text") or call.args.get("markdown_text") or "")
    )


async def test_the_hourly_limit_refuses_a_second_goal_in_its_thread(tmp_path: Path) -> None:
    async with serving(tmp_path, AIRLOCK_RUNS_PER_USER_PER_HOUR="1") as bot:
        bot.anthropic.enqueue(PLAN, text_reply("disks fine"))
        await mention(bot, "W222", "1595926230.000100")
        done = in_thread("1595926230.000100", "**completed**")
        await bot.slack.wait_for_call("chat.startStream", done, timeout=30)

        await mention(bot, "W222", "1595926231.000200")
        refused = await bot.slack.wait_for_call(
            "chat.postMessage", in_thread("1595926231.000200", ":no_entry:"), timeout=30
        )
        assert re.fullmatch(
            r":no_entry: You have started 1 of 1 runs allowed per hour;"
            r" it resets at \d\d:00 UTC, in (\d+ min|1 h)\.",
            refused.args["text"],
        ), refused.args["text"]
        assert len(await bot.store.list_runs()) == 1
        [audited] = [e for e in await bot.store.list_audit(GLOBAL) if e.kind == "run_refused"]
        assert (audited.actor, audited.data["limit"]) == ("W222", "runs_per_hour")


async def test_a_spent_daily_budget_refuses_a_goal(tmp_path: Path) -> None:
    async with serving(tmp_path, AIRLOCK_DAILY_BUDGET_USD="2") as bot:
        await SpendLedger(store=bot.store).charge("W999", 2.0)  # spent by someone, earlier today
        await mention(bot, "W222", "1595926230.000100")
        refused = await bot.slack.wait_for_call(
            "chat.postMessage", in_thread("1595926230.000100", ":no_entry:"), timeout=30
        )
        assert re.fullmatch(
            r":no_entry: Daily budget for the workspace is spent \(\$2\.00 of \$2\.00\);"
            r" it resets at 00:00 UTC, in (\d+ h|\d+ min|\d+ h \d+ min)\.",
            refused.args["text"],
        ), refused.args["text"]
        assert await bot.store.list_runs() == []
        [audited] = [e for e in await bot.store.list_audit(GLOBAL) if e.kind == "run_refused"]
        assert (audited.actor, audited.data["limit"]) == ("W222", "daily_budget")


async def test_a_goal_beyond_the_concurrency_limit_is_shown_its_place(tmp_path: Path) -> None:
    async with serving(tmp_path, AIRLOCK_MAX_CONCURRENT_RUNS="1") as bot:
        release = asyncio.Event()

        async def held(request: Any) -> Any:
            await release.wait()  # the first run plans until the second has been told its place
            return PLAN

        bot.anthropic.enqueue(held, text_reply("first done"), PLAN, text_reply("second done"))
        try:
            await mention(bot, "W222", "1595926230.000100")
            async with asyncio.timeout(30):
                await bot.anthropic.wait_for_requests(1)
            await mention(bot, "W333", "1595926231.000200")
            status = await bot.slack.wait_for_call(
                "chat.postMessage", in_thread("1595926231.000200", "planning"), timeout=30
            )

            def second_status(call: SlackCall) -> bool:
                return call.args.get("ts") == status.response["ts"]

            queued = await bot.slack.wait_for_call("chat.update", second_status, timeout=30)
            assert "waiting for a free slot: number 1 in line" in queued.args["text"]
        finally:
            release.set()
        done = in_thread("1595926231.000200", "**completed**")
        await bot.slack.wait_for_call("chat.startStream", done, timeout=30)
        lines = [c.args["text"] for c in bot.slack.calls_to("chat.update") if second_status(c)]
        assert [line.split(" ", 1)[0] for line in lines] == [
            ":busstop:", ":arrow_forward:", ":clipboard:", ":gear:", ":white_check_mark:"
        ]  # fmt: skip
        # The second started only once the first was over.
        first_done = in_thread("1595926230.000100", "**completed**")
        calls = bot.slack.calls
        ended = next(i for i, c in enumerate(calls) if first_done(c))
        started = next(
            i for i, c in enumerate(calls) if second_status(c) and ":arrow_" in c.args["text"]
        )
        assert ended < started


async def test_airlock_run_is_held_to_the_workspace_budget(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = await open_store(f"sqlite:///{data / 'airlock.db'}")
    try:
        await SpendLedger(store=store).charge("W999", 2.5)
    finally:
        await store.close()
    async with AnthropicStandIn(api_key=KEY) as server:
        code, out, err = await airlock_run(
            "check the disks", server=server, data=data,
            extra={"AIRLOCK_DAILY_BUDGET_USD": "2", "AIRLOCK_USER_DAILY_BUDGET_USD": "1"},
        )  # fmt: skip
    assert code == 1, err
    assert "Daily budget for the workspace is spent ($2.50 of $2.00)" in " ".join(out.split())
    assert server.requests == []
