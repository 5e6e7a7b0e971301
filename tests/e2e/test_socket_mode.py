"""`airlock serve` in Socket Mode: an app token, a websocket, an envelope acked and handled."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_requests import load_json_payload
from agent_core.testing.slack_server import SlackStandIn
from tests.e2e.test_serve import clean_env
from tests.support import airlock_serve

pytestmark = pytest.mark.processes

TOKEN = "xoxb-socket"
APP_TOKEN = "xapp-1-A111-socket"
KEY = "sk-ant-socket"
ENVELOPE = load_json_payload("socket_mode_app_mention_envelope.json")


async def test_a_mention_over_socket_mode_is_acked_and_runs(tmp_path: Path) -> None:
    port = free_port()
    envelope = copy.deepcopy(ENVELOPE)
    envelope["payload"]["event"]["text"] = "<@U111> check the queue depth"
    plan = {"subtasks": [{"id": "s1", "description": "look", "required_tools": [],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    script = [tool_use_reply("submit_plan", plan), text_reply("queue depth is 3")]
    async with (
        SlackStandIn(bot_token=TOKEN, app_token=APP_TOKEN) as slack,
        AnthropicStandIn(api_key=KEY, script=script) as anthropic,
    ):
        env = clean_env(
            SLACK_BOT_TOKEN=TOKEN, SLACK_APP_TOKEN=APP_TOKEN, SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=anthropic.base_url,
            AIRLOCK_DATA_DIR=str(tmp_path / "data"), AIRLOCK_PORT=str(port),
            AIRLOCK_LLM_MAX_RETRIES="0",
        )  # fmt: skip
        async with airlock_serve(env, tmp_path, port):
            # Slack closes Socket Mode connections now and then; the client must come back.
            await slack.wait_for_call("apps.connections.open", timeout=30)
            await slack.send_envelope({"type": "disconnect", "reason": "refresh_requested"})
            await slack.drop_sockets()
            await slack.wait_for_call(
                "apps.connections.open", since=_after_first(slack), timeout=30
            )
            await slack.send_envelope(envelope, timeout=30)
            ack = await slack.wait_for_ack(envelope["envelope_id"], timeout=30)
            assert ack == {"envelope_id": envelope["envelope_id"]}
            event = envelope["payload"]["event"]
            done = await slack.wait_for_answer("**completed**", timeout=30)
        [stream] = slack.calls_to("chat.startStream")
        assert stream.args["thread_ts"] == event["ts"] and "queue depth is 3" in done
        assert slack.calls_to("apps.connections.open")[0].token == APP_TOKEN


def _after_first(slack: SlackStandIn) -> int:
    """The index just after the first apps.connections.open call."""
    first = slack.calls_to("apps.connections.open")[0]
    return slack.calls.index(first) + 1
