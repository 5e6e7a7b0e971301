"""Response URLs on the Slack stand-in, driven by slack_sdk's webhook client and respond()."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.webhook.async_client import AsyncWebhookClient

from agent_core.testing.slack_requests import load_json_payload
from agent_core.testing.slack_server import RESPONSE_URL, SlackStandIn, SlackWorkspace

MENTION = load_json_payload("app_mention.json")["event"]
USER, CHANNEL = MENTION["user"], MENTION["channel"]


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def slack(clock: Clock) -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(workspace=SlackWorkspace(clock=clock, not_in_channels=[CHANNEL])) as s:
        yield s


async def test_respond_reaches_only_the_person_even_where_the_bot_is_not_a_member(
    slack: SlackStandIn,
) -> None:
    url = slack.response_url(user=USER, channel=CHANNEL)
    assert url.startswith("http://127.0.0.1:") and "/commands/" in url
    answer = await AsyncRespond(response_url=url)(text="only you", response_type="ephemeral")
    assert (answer.status_code, answer.body) == (200, "ok")
    call = await slack.wait_for_call(RESPONSE_URL)
    assert call.args == {"text": "only you", "response_type": "ephemeral"}
    assert call.token is None and call.response == {"ok": True}
    shown = slack.workspace.ephemerals[-1]
    assert (shown["user"], shown["channel"], shown["text"]) == (USER, CHANNEL, "only you")
    assert slack.workspace.messages(CHANNEL) == []


async def test_replace_and_delete_the_earlier_answer(slack: SlackStandIn) -> None:
    respond = AsyncRespond(response_url=slack.response_url(user=USER, channel="C0OPEN"))
    await respond(text="working…")
    await respond(text="done", replace_original=True)
    assert [m["text"] for m in slack.workspace.ephemerals] == ["done"]
    await respond(delete_original=True)
    assert slack.workspace.ephemerals == []
    await respond(text="for everyone", response_type="in_channel")
    assert [m["text"] for m in slack.workspace.messages("C0OPEN")] == ["for everyone"]


async def test_slacks_refusals(slack: SlackStandIn, clock: Clock) -> None:
    url = slack.response_url(user=USER, channel="C0OPEN")
    hook = AsyncWebhookClient(url)
    assert (await hook.send_dict({"response_type": "ephemeral"})).body == "no_text"
    bad_type = await hook.send_dict({"text": "x", "response_type": "broadcast"})
    assert (bad_type.status_code, bad_type.body) == (400, "invalid_payload")
    too_long = await hook.send_dict({"text": "x", "blocks": [{"type": "header", "text": {
        "type": "plain_text", "text": "h" * 151}}]})  # fmt: skip
    assert (too_long.status_code, too_long.body) == (400, "invalid_blocks")
    async with aiohttp.ClientSession() as http, http.post(url, data="text=x") as posted:
        assert (posted.status, await posted.text()) == (400, "invalid_payload")
    for n in range(5):
        assert (await hook.send(text=f"answer {n}")).status_code == 200
    used = await hook.send(text="a sixth")
    assert (used.status_code, used.body) == (404, "used_url")
    late = AsyncWebhookClient(slack.response_url(user=USER, channel="C0OPEN"))
    clock.now += 30 * 60 + 1
    assert (await late.send(text="too late")).body == "expired_url"
    unknown = AsyncWebhookClient(url.rsplit("/", 1)[0] + "/forged")
    assert (await unknown.send(text="x")).status_code == 404
    refused = [c for c in slack.calls_to(RESPONSE_URL) if c.status != 200]
    assert [c.response["error"] for c in refused] == [
        "no_text", "invalid_payload", "invalid_blocks", "invalid_payload", "used_url",
        "expired_url", "no_service"]  # fmt: skip


async def test_membership_can_change(slack: SlackStandIn) -> None:
    workspace = slack.workspace
    assert CHANNEL in workspace.not_in_channels
    workspace.join(CHANNEL)
    assert CHANNEL not in workspace.not_in_channels
    workspace.leave(CHANNEL)
    assert CHANNEL in workspace.not_in_channels
