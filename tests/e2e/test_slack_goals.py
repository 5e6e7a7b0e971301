"""Goals from Slack through the real `airlock serve`: a mention becomes a run in its thread,
its approval is clicked, the result is posted; retries and halts are respected."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_core.models import (
    Approval,
    ChannelKind,
    HaltState,
    RiskLevel,
    RunStatus,
    ToolCallSubject,
)
from agent_core.store import Store, open_store
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_requests import (
    SlackRequestSigner,
    load_json_payload,
    post_to_bot,
)
from agent_core.testing.slack_server import RESPONSE_URL, SlackCall, SlackStandIn
from tests.e2e.test_serve import clean_env
from tests.support import airlock_serve, slash_command

pytestmark = pytest.mark.processes

SECRET = "goals-signing-secret"
TOKEN = "xoxb-goals"
KEY = "sk-ant-goals"
MENTION = load_json_payload("app_mention.json")
CLICK = load_json_payload("block_actions.json")
APPROVER = CLICK["user"]["id"]
ADMIN = "U0ADMIN"


@dataclass(kw_only=True)
class Bot:
    url: str
    slack: SlackStandIn
    anthropic: AnthropicStandIn
    store: Store
    signer: SlackRequestSigner

    async def answer(self, form: dict[str, str]) -> SlackCall:
        """Send the slash command ``form``; what the bot posted to its response_url."""
        assert (await post_to_bot(self.url, self.signer.command(form)))[0] == 200
        url = form["response_url"]
        return await self.slack.wait_for_call(RESPONSE_URL, lambda c: c.url == url, timeout=30)


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    port, data = free_port(), tmp_path / "data"
    async with SlackStandIn(bot_token=TOKEN) as slack, AnthropicStandIn(api_key=KEY) as anthropic:
        env = clean_env(
            SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=anthropic.base_url,
            AIRLOCK_DATA_DIR=str(data), AIRLOCK_PORT=str(port), AIRLOCK_APPROVERS=APPROVER,
            AIRLOCK_ADMINS=ADMIN,
            AIRLOCK_LLM_MAX_RETRIES="0",
            # Bolt would turn into a multi-workspace OAuth app with these; airlock ignores them.
            SLACK_CLIENT_ID="1111.2222", SLACK_CLIENT_SECRET="not-used",
        )  # fmt: skip
        async with airlock_serve(env, tmp_path, port):
            store = await open_store(f"sqlite:///{data / 'airlock.db'}")
            try:
                url = f"http://127.0.0.1:{port}/slack/events"
                yield Bot(url=url, slack=slack, anthropic=anthropic, store=store,
                          signer=SlackRequestSigner(SECRET))  # fmt: skip
            finally:
                await store.close()


def has_buttons(call: SlackCall) -> bool:
    return any(b.get("type") == "actions" for b in call.args.get("blocks") or [])


def says(text: str) -> Any:
    return lambda call: text in (call.args.get("text") or "")


async def test_a_mention_runs_in_its_thread_through_an_approval(bot: Bot) -> None:
    plan = {"subtasks": [{"id": "s1", "description": "write the note", "required_tools": [],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan),
        tool_use_reply("write_file", {"path": "hi.txt", "content": "hello"}),
        text_reply("said hi in hi.txt"),
    )
    event = MENTION["event"]
    stale = bot.signer.event(MENTION, timestamp=int(time.time()) - 6 * 60)
    assert (await post_to_bot(bot.url, stale))[0] == 401  # replayed: older than 5 minutes
    forged = SlackRequestSigner("not-the-secret").event(MENTION)
    assert (await post_to_bot(bot.url, forged))[0] == 401
    assert (await post_to_bot(bot.url, bot.signer.event(MENTION)))[0] == 200
    # Slack's retries of the same delivery must not start more runs.
    for attempt in (1, 2, 3):
        retry = bot.signer.event(MENTION, retry_num=attempt, retry_reason="http_timeout")
        assert (await post_to_bot(bot.url, retry))[0] == 200

    started = await bot.slack.wait_for_call("chat.postMessage", says("planning"), timeout=30)
    assert started.args["thread_ts"] == event["ts"] and started.args["channel"] == event["channel"]
    request = await bot.slack.wait_for_call("chat.postMessage", has_buttons, timeout=30)
    approval_id = request.args["blocks"][-2]["elements"][0]["value"]

    click = copy.deepcopy(CLICK)
    click["container"].update(channel_id=event["channel"], message_ts=request.response["ts"],
                              is_ephemeral=False)  # fmt: skip
    click["actions"][0].update(action_id="airlock_approve", value=approval_id)
    assert (await post_to_bot(bot.url, bot.signer.interaction(click)))[0] == 200
    done = await bot.slack.wait_for_answer("**completed**", timeout=30)
    assert "said hi in hi.txt" in done
    [stream] = bot.slack.calls_to("chat.startStream")
    assert stream.args["thread_ts"] == event["ts"]

    [run] = await bot.store.list_runs()
    assert run.channel_kind is ChannelKind.PUBLIC  # a mention: a channel, never a DM
    assert (run.goal, run.requester, run.status) == (
        "Hi there!",
        event["user"],
        RunStatus.COMPLETED,
    )
    posted = bot.slack.calls_to("chat.postMessage")
    threads = {c.args.get("thread_ts") for c in posted if c.args["channel"] == event["channel"]}
    assert threads == {event["ts"]}  # everything about the run stays in its thread
    # ... but the approver is asked in a direct message too
    assert {c.args["channel"] for c in posted if c.args["channel"] != event["channel"]} == {
        APPROVER
    }
    status = [c.args["text"] for c in bot.slack.calls_to("chat.update")
              if c.args.get("ts") == started.response["ts"]]  # fmt: skip
    assert [line.split(" ", 1)[0] for line in status] == [
        ":clipboard:", ":gear:", ":hourglass_flowing_sand:", ":gear:", ":white_check_mark:"
    ]  # fmt: skip
    # planned, step 1 of 1, waiting, step 1 of 1 again (resumed), completed
    assert "waiting for approval" in status[2] and "step 1 of 1" in status[1]

    for user, expected in (
        (APPROVER, "Not allowed"),
        (event["user"], "1 tool call(s): write_file"),
    ):
        reply = await bot.answer(slash_command(bot.slack, f"audit {run.id}", user=user))
        assert expected in reply.args["text"]
    assert f"<@{APPROVER}> approve `{approval_id}`" in reply.args["text"]


async def test_agent_command_starts_a_thread_and_halt_refuses(bot: Bot) -> None:
    form = slash_command(bot.slack, "check the disks", user=MENTION["event"]["user"])
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", {"subtasks": [
            {"id": "s1", "description": "look", "required_tools": [], "depends_on": [],
             "risk_level": "low"}]}),
        text_reply("disks fine"),
    )  # fmt: skip
    assert (await post_to_bot(bot.url, bot.signer.command(form)))[0] == 200
    top = await bot.slack.wait_for_call(
        "chat.postMessage", says("asked: check the disks"), timeout=30
    )
    await bot.slack.wait_for_answer("**completed**", timeout=30)
    [stream] = bot.slack.calls_to("chat.startStream")
    assert stream.args["thread_ts"] == top.response["ts"]

    bot.anthropic.enqueue(tool_use_reply("submit_plan", {"subtasks": [
        {"id": "s1", "description": "wipe the disks", "required_tools": [], "depends_on": [],
         "risk_level": "critical"}]}))  # fmt: skip
    form = slash_command(bot.slack, "plan wipe the disks", user=form["user_id"])
    assert (await post_to_bot(bot.url, bot.signer.command(form)))[0] == 200
    planned = await bot.slack.wait_for_answer("dry run", timeout=30)
    assert "1 subtask planned, none run" in planned
    assert [r.dry_run for r in await bot.store.list_runs()].count(True) == 1
    # The recorded command was typed in #random: a public channel, by its channel_name.
    assert {r.channel_kind for r in await bot.store.list_runs()} == {ChannelKind.PUBLIC}

    await bot.store.set_halt(HaltState(halted=True, by="U0ADMIN", reason="maintenance"))
    form = slash_command(bot.slack, "another goal", user=form["user_id"])
    assert (await post_to_bot(bot.url, bot.signer.command(form)))[0] == 200
    refused = await bot.slack.wait_for_call("chat.postMessage", says("halted"), timeout=30)
    assert "maintenance" in refused.args["text"]
    assert len(await bot.store.list_runs()) == 2  # the refused goal started nothing


async def test_admin_verbs_of_agent_are_answered_privately(bot: Bot) -> None:
    async def agent(text: str, user: str) -> str:
        reply = await bot.answer(slash_command(bot.slack, text, user=user))
        assert reply.args["response_type"] == "ephemeral"
        return str(reply.args["text"])

    assert "/agent plan <goal>" in await agent("help", APPROVER)
    assert "Not allowed: only an admin may halt airlock" in await agent("halt", APPROVER)
    assert "Halted" in await agent("halt deploy freeze", ADMIN)
    status = await agent("status", APPROVER)
    assert "Halted by <@U0ADMIN>: deploy freeze" in status and "0 active run(s)" in status
    assert "Not allowed" in await agent("kill run_nope", APPROVER)
    assert "Resumed" in await agent("resume", ADMIN)
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    approval = await bot.store.create_approval(
        Approval(run_id="run_typed", subject=subject, risk=RiskLevel.HIGH, requester="W0OTHER")
    )
    assert f"`{approval.id}` rejected." in await agent(f"reject {approval.id} not today", APPROVER)
    assert "Already rejected" in await agent(f"approve {approval.id}", APPROVER)
    assert (await bot.store.get_approval(approval.id)).decisions[-1].reason == "not today"
    halt = await bot.store.get_halt()
    assert halt is not None and not halt.halted


async def test_a_failed_run_is_retried_from_slack_as_attempt_2_of_the_same_run(bot: Bot) -> None:
    from agent_core.testing.anthropic_server import fault

    plan = {"subtasks": [{"id": "s1", "description": "look", "required_tools": [],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    bot.anthropic.enqueue(tool_use_reply("submit_plan", plan), fault(500))
    assert (await post_to_bot(bot.url, bot.signer.event(MENTION)))[0] == 200
    await bot.slack.wait_for_answer("**failed**", timeout=30)
    [run] = await bot.store.list_runs()
    since = len(bot.slack.calls)
    bot.anthropic.enqueue(text_reply("all good now"))
    reply = await bot.answer(slash_command(bot.slack, f"retry {run.id}", user=run.requester))
    assert f"Run `{run.id}` is retrying as attempt 2" in reply.args["text"]
    await bot.slack.wait_for_answer("all good now", since=since, timeout=30)
    streams = bot.slack.calls_to("chat.startStream")
    assert {c.args["thread_ts"] for c in streams} == {MENTION["event"]["ts"]}
    await bot.slack.wait_for_call("chat.update", says("completed (attempt 2)"), since=since,
                                  timeout=30)  # fmt: skip
    assert (await bot.store.get_run(run.id)).attempt == 2
