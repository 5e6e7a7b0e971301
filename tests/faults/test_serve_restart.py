"""`airlock serve` over HTTP: a run waits on a Slack button, the server is SIGKILLed, and the
old button, clicked after the restart, still releases the call, exactly once."""

from __future__ import annotations

import copy
import signal
from pathlib import Path
from typing import Any

import pytest

from agent_core.models import Run, RunStatus
from agent_core.store import open_store
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackCall, SlackStandIn
from tests.e2e.test_serve import clean_env
from tests.support import airlock_serve, eventually

pytestmark = pytest.mark.processes

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-airlock-restart"
KEY = "sk-ant-serve-restart"
MENTION = load_json_payload("app_mention.json")["event"]
CLICK = load_json_payload("block_actions.json")
APPROVER = CLICK["user"]["id"]


def approval_request(call: SlackCall) -> bool:
    return any(b.get("type") == "actions" for b in call.args.get("blocks") or [])


def click(approval_id: str, message_ts: str, *, user: str) -> dict[str, Any]:
    """The SDK's block_actions sample, pointed at our Approve button."""
    body = copy.deepcopy(CLICK)
    body["user"]["id"] = user
    body["container"].update(channel_id=MENTION["channel"], message_ts=message_ts,
                             is_ephemeral=False)  # fmt: skip
    body["actions"][0].update(
        action_id="airlock_approve", block_id=f"airlock:{approval_id}", value=approval_id,
        text={"type": "plain_text", "text": "Approve"},
    )  # fmt: skip
    return body


async def test_an_old_button_still_works_after_the_server_was_killed(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    plan = {"subtasks": [{"id": "s1", "description": "write the note", "required_tools": [],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    script = [
        tool_use_reply("submit_plan", plan),
        tool_use_reply("write_file", {"path": "note.txt", "content": "v2"}),
        text_reply("note written"),
    ]
    store = await open_store(f"sqlite:///{data / 'airlock.db'}")
    thread = {"channel": MENTION["channel"], "thread_ts": MENTION["ts"]}
    run = await store.create_run(Run(goal="write the note", requester=MENTION["user"], **thread))
    async with (
        SlackStandIn(bot_token=TOKEN) as slack,
        AnthropicStandIn(api_key=KEY, script=script) as anthropic,
    ):
        env = clean_env(
            SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=anthropic.base_url,
            AIRLOCK_DATA_DIR=str(data), AIRLOCK_PORT=str(port), AIRLOCK_APPROVERS=APPROVER,
            AIRLOCK_LLM_MAX_RETRIES="0", AIRLOCK_SIGNAL_POLL_SECONDS="0.05",
        )  # fmt: skip
        async with airlock_serve(env, tmp_path, port) as first:
            posted = await slack.wait_for_call("chat.postMessage", approval_request, timeout=30)
            await eventually(lambda: _parked(store, run.id), timeout=30, load_scaled=True)
            first.send_signal(signal.SIGKILL)
            await first.wait()

        approval_id = posted.args["blocks"][-2]["elements"][0]["value"]
        ts = posted.response["ts"]
        url = f"http://127.0.0.1:{port}/slack/events"
        signer = SlackRequestSigner(SECRET)
        async with airlock_serve(env, tmp_path, port):
            since = len(slack.calls)
            stranger = await post_to_bot(
                url, signer.interaction(click(approval_id, ts, user="W0STRANGER"))
            )
            assert stranger[0] == 200
            refusal = await slack.wait_for_call("chat.postEphemeral", since=since, timeout=30)
            assert "not an approver" in refusal.args["text"]

            forged = SlackRequestSigner("not-the-secret").interaction(
                click(approval_id, ts, user=APPROVER)
            )
            assert (await post_to_bot(url, forged))[0] == 401

            assert (
                await post_to_bot(url, signer.interaction(click(approval_id, ts, user=APPROVER)))
            )[0] == 200
            settled = await slack.wait_for_call("chat.update", lambda c: c.args.get("ts") == ts,
                                                since=since, timeout=30)  # fmt: skip
            assert "approved by" in str(settled.args["blocks"])
            finished = await slack.wait_for_answer("**completed**", since=since, timeout=30)
            assert "note written" in finished

        done = await store.get_run(run.id)
        events = await store.list_audit(run.id)
        await store.close()
    assert done.status is RunStatus.COMPLETED
    assert (data / "workspace" / "note.txt").read_text() == "v2"
    assert [e.data.get("tool") for e in events if e.kind == "tool_call"] == ["write_file"]
    assert [e.actor for e in events if e.kind == "decision_refused"] == ["W0STRANGER"]


async def _parked(store: Any, run_id: str) -> bool:
    return (await store.get_run(run_id)).status is RunStatus.AWAITING_APPROVAL
