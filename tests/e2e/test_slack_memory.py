"""Memory through the real `airlock serve`: `/agent remember|memories|forget` and their scopes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from agent_core.testing.anthropic_server import AnthropicStandIn
from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_requests import SlackRequestSigner, load_text_payload, post_to_bot
from agent_core.testing.slack_server import RESPONSE_URL, SlackStandIn
from tests.e2e.test_serve import clean_env
from tests.support import airlock_serve, slash_command

pytestmark = pytest.mark.processes

SECRET = "memory-signing-secret"
TOKEN = "xoxb-memory"
KEY = "sk-ant-memory"
FORM = dict(parse_qsl(load_text_payload("slash_command.txt")))
USER, CHANNEL = FORM["user_id"], FORM["channel_id"]
ADMIN = "U0ADMIN"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, SlackStandIn]]:
    port = free_port()
    async with SlackStandIn(bot_token=TOKEN) as slack, AnthropicStandIn(api_key=KEY) as anthropic:
        env = clean_env(
            SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=anthropic.base_url,
            AIRLOCK_DATA_DIR=str(tmp_path / "data"), AIRLOCK_PORT=str(port),
            AIRLOCK_ADMINS=ADMIN, AIRLOCK_MEMORY_ENABLED="true", HF_HUB_OFFLINE="1",
        )  # fmt: skip
        async with airlock_serve(env, tmp_path, port):
            yield f"http://127.0.0.1:{port}/slack/events", slack


async def agent(
    served: tuple[str, SlackStandIn], text: str, *, user: str = USER, channel: str = CHANNEL
) -> str:
    """Type `/agent <text>`; the ephemeral reply.

    Each command gets its own ``trigger_id``, as in Slack: the same text typed twice within
    a second is two commands, not a replay.
    """
    url, slack = served
    form = slash_command(slack, text, user=user, channel=channel)
    status, _ = await post_to_bot(url, SlackRequestSigner(SECRET).command(form))
    assert status == 200
    hook = form["response_url"]
    reply = await slack.wait_for_call(RESPONSE_URL, lambda c: c.url == hook, timeout=60)
    assert reply.args["response_type"] == "ephemeral"
    return str(reply.args["text"])


async def test_people_curate_memory_in_the_place_they_type(
    served: tuple[str, SlackStandIn],
) -> None:
    said = await agent(served, "remember staging deploys go through the deploy-web MCP tool")
    first = re.search(r"`(mem_[0-9a-f]+)`", said)
    assert said.startswith("Remembered here") and first is not None
    again = await agent(served, "remember Staging deploys go through the deploy-web MCP tool.")
    memory_id = re.search(r"is now `(mem_[0-9a-f]+)`", again)
    assert again.startswith(f"Updated what I knew: `{first.group(1)}`") and memory_id is not None

    found = await agent(served, "memories how do we deploy the web app")
    assert memory_id.group(1) in found and "deploy-web" in found
    elsewhere = await agent(served, "memories how do we deploy the web app", channel="C0OTHER")
    assert elsewhere == "Nothing remembered here matches that."

    refused = await agent(served, f"forget {memory_id.group(1)}", channel="C0OTHER")
    assert refused.startswith("Not allowed")
    not_admin = await agent(served, "remember --workspace everyone uses deploy-web")
    assert not_admin.startswith("Not allowed")
    workspace = await agent(served, "remember --workspace the deploy freeze starts on Fridays",
                            user=ADMIN, channel="C0OTHER")  # fmt: skip
    assert workspace.startswith("Remembered workspace-wide")
    assert "freeze" in await agent(served, "memories when is the deploy freeze")

    forgot = await agent(served, f"forget {memory_id.group(1)}")
    assert forgot.startswith(f"Forgot `{memory_id.group(1)}`")
    after = await agent(served, "memories how do we deploy the web app")
    assert memory_id.group(1) not in after
