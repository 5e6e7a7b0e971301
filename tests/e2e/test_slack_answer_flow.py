"""An answer's whole life through the real `airlock serve` over signed HTTP: a mention's run
streams its answer in the thread, its feedback buttons hear only the requester (audited and
counted), and the assistant side panel suggests prompts and answers them."""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent_core.models import Approval, RiskLevel, Run, ToolCallSubject
from agent_core.store import Store, open_store
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackStandIn
from bot.slack.answers import FEEDBACK
from tests.e2e.test_serve import clean_env
from tests.support import airlock_serve, eventually

pytestmark = pytest.mark.processes

SECRET, TOKEN, KEY = "answers-secret", "xoxb-answers", "sk-ant-answers"
MENTION = load_json_payload("app_mention.json")
CLICK = load_json_payload("block_actions.json")
DM = load_json_payload("message_im_assistant_thread.json")
REQUESTER = MENTION["event"]["user"]
APPROVER = "U0APPROVER"


@dataclass(kw_only=True)
class Bot:
    url: str
    port: int
    slack: SlackStandIn
    anthropic: AnthropicStandIn
    store: Store
    signer: SlackRequestSigner

    async def send(self, request: Any) -> None:
        assert (await post_to_bot(self.url, request))[0] == 200


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    port, data = free_port(), tmp_path / "data"
    async with SlackStandIn(bot_token=TOKEN) as slack, AnthropicStandIn(api_key=KEY) as anthropic:
        env = clean_env(
            SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=anthropic.base_url,
            AIRLOCK_DATA_DIR=str(data), AIRLOCK_PORT=str(port), AIRLOCK_APPROVERS=APPROVER,
            AIRLOCK_LLM_MAX_RETRIES="0",
        )  # fmt: skip
        async with airlock_serve(env, tmp_path, port):
            store = await open_store(f"sqlite:///{data / 'airlock.db'}")
            try:
                url = f"http://127.0.0.1:{port}/slack/events"
                yield Bot(url=url, port=port, slack=slack, anthropic=anthropic, store=store,
                          signer=SlackRequestSigner(SECRET))  # fmt: skip
            finally:
                await store.close()


def _click(value: str, user: str, where: dict[str, Any]) -> dict[str, Any]:
    click = copy.deepcopy(CLICK)
    click["user"]["id"] = user
    click["container"].update(channel_id=where["channel"], message_ts=where["ts"],
                              thread_ts=where["thread_ts"], is_ephemeral=False)  # fmt: skip
    click["actions"] = [{"type": "feedback_buttons", "action_id": FEEDBACK, "block_id": "fb",
                         "value": value, "text": {"type": "plain_text", "text": "👍"},
                         "action_ts": "1700000000.000100"}]  # fmt: skip
    return click


async def _metric(port: int) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        page = await r.text()
    found = re.search(r'^airlock_answer_feedback_total\{value="positive"\} (\S+)$', page, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_streamed_answer_hears_only_its_requester_s_feedback(bot: Bot) -> None:
    plan = {"subtasks": [{"id": "s1", "description": "check the disks", "required_tools": [],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    answer = ("## Disks\n\n**web1** is at *42%*. <!channel> see [https://wiki.example/disks]"
              "(https://evil.example/steal).\n\n| host | use |\n|---|---|\n"
              "| web1 | 42% |")  # fmt: skip
    bot.anthropic.enqueue(tool_use_reply("submit_plan", plan), text_reply(answer))
    await bot.send(bot.signer.event(MENTION))
    shown = await bot.slack.wait_for_answer("**completed**", timeout=30)
    assert "## Disks\n\n**web1** is at *42%*." in shown and "| web1 | 42% |" in shown
    assert "<!channel>" not in shown and "[https://wiki.example/disks](" not in shown
    [start] = bot.slack.calls_to("chat.startStream")
    assert start.args["thread_ts"] == MENTION["event"]["ts"]
    assert start.args["recipient_user_id"] == REQUESTER
    [stop] = bot.slack.calls_to("chat.stopStream")
    [run] = await bot.store.list_runs()
    where = {"channel": start.response["channel"], "ts": start.response["ts"],
             "thread_ts": MENTION["event"]["ts"]}  # fmt: skip
    assert stop.args["blocks"][0]["elements"][0]["positive_button"]["value"] == f"positive {run.id}"

    since = len(bot.slack.calls)
    await bot.send(bot.signer.interaction(_click(f"positive {run.id}", APPROVER, where)))
    told = await bot.slack.wait_for_call("chat.postEphemeral", since=since, timeout=30)
    assert told.args["user"] == APPROVER and f"Only <@{REQUESTER}>" in told.args["text"]
    for _ in range(2):  # a double click counts once
        await bot.send(bot.signer.interaction(_click(f"positive {run.id}", REQUESTER, where)))

    async def heard() -> bool:
        kinds = [e.kind for e in await bot.store.list_audit(run.id)]
        return kinds.count("answer_feedback") == 1 and "answer_feedback_refused" in kinds

    await eventually(heard, timeout=30)
    events = [e for e in await bot.store.list_audit(run.id) if e.kind.startswith("answer_")]
    assert [(e.kind, e.actor, e.data["value"]) for e in events] == [
        ("answer_feedback_refused", APPROVER, "positive"),
        ("answer_feedback", REQUESTER, "positive"),
    ]

    # The count follows the durable line in the bot's process, so this process can read the
    # line before the bot has counted it.
    async def counted() -> bool:
        return await _metric(bot.port) >= 1.0

    await eventually(counted, timeout=30)
    assert await _metric(bot.port) == 1.0


async def test_the_side_panel_suggests_prompts_and_answers_them_with_slash_authority(
    bot: Bot,
) -> None:
    dm = DM["event"]
    started = copy.deepcopy(DM)
    started["event"] = {"type": "assistant_thread_started", "event_ts": dm["thread_ts"],
                        "assistant_thread": {"user_id": dm["user"], "channel_id": dm["channel"],
                                             "thread_ts": dm["thread_ts"],
                                             "context": {"channel_id": None, "team_id": "T111",
                                                         "enterprise_id": None}}}  # fmt: skip
    started["event_id"] = "Ev0PANEL1"
    await bot.send(bot.signer.event(started))
    await bot.slack.wait_for_call("assistant.threads.setSuggestedPrompts", timeout=30)
    prompts = bot.slack.workspace.suggested_prompts[(dm["channel"], dm["thread_ts"])]["prompts"]
    assert [p["title"] for p in prompts] == ["What's waiting for my approval?", "My runs",
                                             "Start a goal"]  # fmt: skip

    other = await bot.store.create_run(Run(goal="deploy", requester="W0OTHER", channel="C1",
                                           thread_ts="1.1"))  # fmt: skip
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    asked = Approval(run_id=other.id, subject=subject, risk=RiskLevel.HIGH, requester="W0OTHER")
    pending = await bot.store.create_approval(asked)

    async def ask(text: str, user: str, n: int) -> str:
        message = copy.deepcopy(DM)
        message["event"].update(text=text, user=user, ts=f"1726133700.{n:06d}")
        message["event_id"] = f"Ev0ASK{n}"
        since = len(bot.slack.calls)
        await bot.send(bot.signer.event(message))
        said = await bot.slack.wait_for_call(
            "chat.postMessage", lambda c: c.args.get("thread_ts") == dm["thread_ts"],
            since=since, timeout=30,
        )  # fmt: skip
        return str(said.args["text"])

    assert "Nothing is waiting for your approval" in await ask(prompts[0]["message"], dm["user"], 1)
    assert pending.id in await ask(prompts[0]["message"], APPROVER, 2)  # an approver sees it
    assert "0 active run(s) of yours" in await ask("My runs", dm["user"], 3)
    plan = {"subtasks": [{"id": "s1", "description": "tidy", "required_tools": [],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    bot.anthropic.enqueue(tool_use_reply("submit_plan", plan), text_reply("tidied up"))
    assert "planning" in await ask("tidy the tmp folder", dm["user"], 4)
    assert "tidied up" in await bot.slack.wait_for_answer("**completed**", timeout=30)
    runs = [r for r in await bot.store.list_runs() if r.goal == "tidy the tmp folder"]
    assert [(r.requester, r.channel, r.thread_ts) for r in runs] == [
        (dm["user"], dm["channel"], dm["thread_ts"])
    ]
