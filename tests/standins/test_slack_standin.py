"""The Slack Web API stand-in, driven by the real `slack_sdk` AsyncWebClient.

Channel, user and thread ids come from the recorded Slack payload samples, so
the calls are the ones the bot makes when it answers those events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.errors import StandInError
from agent_core.testing.slack_requests import load_json_payload
from agent_core.testing.slack_server import SlackStandIn, SlackWorkspace

TOKEN = "xoxb-test"
APPROVERS = "S0APPROVERS"
PRIVATE = "C0PRIVATE"


@pytest.fixture
def mention() -> dict[str, Any]:
    """The ``event`` of a recorded app_mention (channel C111, user W222)."""
    event: dict[str, Any] = load_json_payload("app_mention.json")["event"]
    return event


@pytest.fixture
async def slack(mention: dict[str, Any]) -> AsyncIterator[SlackStandIn]:
    clicker = load_json_payload("block_actions.json")["user"]
    workspace = SlackWorkspace(
        users={mention["user"]: {"name": "mentioner"}, clicker["id"]: {"name": clicker["name"]}},
        usergroups={APPROVERS: [clicker["id"]]},
        not_in_channels=[PRIVATE],
    )
    async with SlackStandIn(bot_token=TOKEN, workspace=workspace) as standin:
        yield standin


@pytest.fixture
def client(slack: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=slack.api_url)


async def api_error(call: Any) -> dict[str, Any]:
    """The body of the SlackApiError the awaitable raises."""
    with pytest.raises(SlackApiError) as raised:
        await call
    data: dict[str, Any] = raised.value.response.data
    return data


async def test_reply_in_thread_then_update_then_read_the_thread(
    slack: SlackStandIn,
    client: AsyncWebClient,
    mention: dict[str, Any],
) -> None:
    channel, parent_ts = mention["channel"], mention["ts"]
    slack.workspace.add_message(
        channel=channel, text=mention["text"], user=mention["user"], ts=parent_ts
    )
    posted = await client.chat_postMessage(
        channel=channel, text="on it", thread_ts=parent_ts, blocks=[{"type": "divider"}]
    )
    second = await client.chat_postMessage(channel=channel, text="step 1", thread_ts=parent_ts)
    assert posted["channel"] == channel
    assert posted["message"]["thread_ts"] == parent_ts
    assert posted["message"]["bot_id"] == "BZYBOTHED"
    assert posted["message"]["blocks"] == [{"type": "divider"}]
    assert float(second["ts"]) > float(posted["ts"])

    updated = await client.chat_update(channel=channel, ts=posted["ts"], text="done")
    assert (updated["ts"], updated["text"], updated["message"]["text"]) == (
        posted["ts"],
        "done",
        "done",
    )

    thread = await client.conversations_replies(channel=channel, ts=parent_ts)
    texts = [m["text"] for m in thread["messages"]]
    assert texts == [mention["text"], "done", "step 1"]
    assert thread["messages"][0]["reply_count"] == 2
    assert thread["messages"][1]["edited"]["user"] == "W23456789"


async def test_history_shows_top_level_messages_newest_first(
    client: AsyncWebClient,
    mention: dict[str, Any],
) -> None:
    channel = mention["channel"]
    first = await client.chat_postMessage(channel=channel, text="one")
    await client.chat_postMessage(channel=channel, text="reply", thread_ts=first["ts"])
    await client.chat_postMessage(channel=channel, text="two")
    history = await client.conversations_history(channel=channel)
    assert [m["text"] for m in history["messages"]] == ["two", "one"]
    assert history["messages"][1]["reply_count"] == 1
    assert (await api_error(client.conversations_history(channel="C0NOWHERE")))["error"] == (
        "channel_not_found"
    )
    assert (await api_error(client.conversations_replies(channel=channel, ts="1.2")))["error"] == (
        "thread_not_found"
    )


async def test_update_and_delete_refuse_messages_of_others(
    slack: SlackStandIn,
    client: AsyncWebClient,
    mention: dict[str, Any],
) -> None:
    slack.workspace.add_message(
        channel=mention["channel"], text=mention["text"], user=mention["user"], ts=mention["ts"]
    )
    where = {"channel": mention["channel"], "ts": mention["ts"]}
    assert (await api_error(client.chat_update(**where, text="x")))["error"] == (
        "cant_update_message"
    )
    assert (await api_error(client.chat_delete(**where)))["error"] == "cant_delete_message"
    mine = await client.chat_postMessage(channel=mention["channel"], text="mine")
    await client.chat_delete(channel=mention["channel"], ts=mine["ts"])
    assert [m["text"] for m in slack.workspace.messages(mention["channel"])] == [mention["text"]]


async def test_wrong_or_missing_token_is_refused_like_slack(slack: SlackStandIn) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)
    assert (await api_error(wrong.auth_test()))["error"] == "invalid_auth"
    anonymous = AsyncWebClient(base_url=slack.api_url)
    assert (await api_error(anonymous.auth_test()))["error"] == "not_authed"
    assert [(c.token, c.status) for c in slack.calls_to("auth.test")] == [
        ("xoxb-wrong", 200),
        (None, 200),
    ]


async def test_auth_test_names_the_bot(client: AsyncWebClient) -> None:
    auth = await client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == (
        "W23456789",
        "BZYBOTHED",
        "T0G9PQBBK",
    )
    assert auth["url"].startswith("https://") and auth["url"].endswith(".slack.com/")


async def test_directory_answers_users_and_groups(
    client: AsyncWebClient,
    mention: dict[str, Any],
) -> None:
    user = await client.users_info(user=mention["user"])
    assert (user["user"]["id"], user["user"]["name"], user["user"]["is_bot"]) == (
        mention["user"],
        "mentioner",
        False,
    )
    assert (await api_error(client.users_info(user="W0NOBODY")))["error"] == "user_not_found"
    group = await client.usergroups_users_list(usergroup=APPROVERS)
    assert group["users"] == ["W111"]
    missing = await api_error(client.usergroups_users_list(usergroup="S0NONE"))
    assert missing["error"] == "no_such_subteam"


async def test_unknown_method(client: AsyncWebClient) -> None:
    body = await api_error(client.api_call("chat.teleport", json={"channel": "C111"}))
    assert body["error"] == "unknown_method"


async def test_not_in_channel(client: AsyncWebClient) -> None:
    body = await api_error(client.chat_postMessage(channel=PRIVATE, text="hello"))
    assert body["error"] == "not_in_channel"


async def test_missing_text_and_missing_argument(client: AsyncWebClient) -> None:
    # api_call, because chat_postMessage warns (an error here) before sending no text.
    no_text = await api_error(client.api_call("chat.postMessage", json={"channel": "C111"}))
    assert no_text["error"] == "no_text"
    body = await api_error(client.api_call("reactions.add", params={"channel": "C111"}))
    assert body["error"] == "invalid_arguments"
    assert "timestamp" in body["response_metadata"]["messages"][0]


async def test_rate_limit_is_retried_by_the_sdk_after_retry_after(
    slack: SlackStandIn,
    mention: dict[str, Any],
) -> None:
    # The handler sleeps int(Retry-After) + random() seconds: 0 keeps this under a second.
    slack.fail_next("chat.postMessage", retry_after=0)
    client = AsyncWebClient(
        token=TOKEN,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    posted = await client.chat_postMessage(channel=mention["channel"], text="hello")
    assert posted["ok"]
    calls = slack.calls_to("chat.postMessage")
    assert [(c.status, c.response["ok"]) for c in calls] == [(429, False), (200, True)]
    assert calls[0].response["error"] == "ratelimited"


async def test_rate_limit_headers_on_the_wire(slack: SlackStandIn) -> None:
    slack.fail_next("auth.test", retry_after=7)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            slack.api_url + "auth.test",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response,
    ):
        assert (response.status, response.headers["Retry-After"]) == (429, "7")
        assert await response.json() == {"ok": False, "error": "ratelimited"}


async def test_injected_error_with_fields(
    slack: SlackStandIn,
    client: AsyncWebClient,
    mention: dict[str, Any],
) -> None:
    slack.fail_next(
        "chat.postMessage",
        error="missing_scope",
        fields={"needed": "chat:write", "provided": "commands"},
    )
    body = await api_error(client.chat_postMessage(channel=mention["channel"], text="x"))
    assert (body["error"], body["needed"], body["provided"]) == (
        "missing_scope",
        "chat:write",
        "commands",
    )
    assert (await client.chat_postMessage(channel=mention["channel"], text="x"))["ok"]


async def test_wait_for_call_sees_a_call_made_after_the_wait_began(
    slack: SlackStandIn,
    client: AsyncWebClient,
    mention: dict[str, Any],
) -> None:
    await client.chat_postMessage(channel=mention["channel"], text="before")
    waiter = asyncio.create_task(
        slack.wait_for_call(
            "chat.postMessage", lambda c: c.args["text"] == "after", since=len(slack.calls)
        )
    )
    await asyncio.sleep(0)
    assert not waiter.done()
    await client.chat_postMessage(channel=mention["channel"], text="after")
    call = await waiter
    assert (call.args["channel"], call.token) == (mention["channel"], TOKEN)


async def test_wait_for_call_times_out_naming_what_it_saw(
    slack: SlackStandIn,
    client: AsyncWebClient,
) -> None:
    await client.auth_test()
    with pytest.raises(TimeoutError, match=r"chat\.update.*auth\.test"):
        await slack.wait_for_call("chat.update", timeout=0.05)


async def test_views_open_update_publish(
    slack: SlackStandIn,
    client: AsyncWebClient,
) -> None:
    submitted = load_json_payload("view_submission.json")
    spec = {
        k: submitted["view"][k]
        for k in ("type", "title", "submit", "close", "blocks", "private_metadata", "callback_id")
    }
    opened = (await client.views_open(trigger_id=submitted["trigger_id"], view=spec))["view"]
    assert opened["id"].startswith("V")
    assert (opened["callback_id"], opened["private_metadata"]) == ("view-id", "This is for you!")
    assert opened["blocks"] == spec["blocks"]
    updated = await client.views_update(
        view_id=opened["id"], hash=opened["hash"], view={**spec, "private_metadata": "v2"}
    )
    assert (updated["view"]["id"], updated["view"]["private_metadata"]) == (opened["id"], "v2")
    stale = await api_error(
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=spec)
    )
    assert stale["error"] == "hash_conflict"
    home = {"type": "home", "blocks": spec["blocks"]}
    user = submitted["user"]["id"]
    first = await client.views_publish(user_id=user, view=home)
    again = await client.views_publish(user_id=user, view=home)
    assert first["view"]["id"] == again["view"]["id"]
    assert slack.workspace.views[first["view"]["id"]]["type"] == "home"


async def test_reactions_ephemeral_permalink_and_assistant_status(
    slack: SlackStandIn,
    client: AsyncWebClient,
    mention: dict[str, Any],
) -> None:
    where = {"channel": mention["channel"], "timestamp": mention["ts"], "name": "eyes"}
    await client.reactions_add(**where)
    assert (await api_error(client.reactions_add(**where)))["error"] == "already_reacted"
    eph = await client.chat_postEphemeral(
        channel=mention["channel"], user=mention["user"], text="only you"
    )
    assert eph["message_ts"] == slack.workspace.ephemerals[0]["ts"]
    posted = await client.chat_postMessage(
        channel=mention["channel"], text="x", thread_ts=mention["ts"]
    )
    link = await client.chat_getPermalink(channel=mention["channel"], message_ts=posted["ts"])
    assert link["permalink"].startswith("https://airlock-test.slack.com/archives/C111/p")
    assert f"thread_ts={mention['ts']}" in link["permalink"]
    dm = load_json_payload("message_im_assistant_thread.json")["event"]
    await client.assistant_threads_setStatus(
        channel_id=dm["channel"], thread_ts=dm["thread_ts"], status="is thinking..."
    )
    assert slack.workspace.statuses[(dm["channel"], dm["thread_ts"])] == "is thinking..."


async def test_form_bodies_with_token_param_and_get(slack: SlackStandIn) -> None:
    blocks = '[{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]'
    async with aiohttp.ClientSession() as http:
        async with http.post(
            slack.api_url + "chat.postMessage",
            data={"token": TOKEN, "channel": "C111", "blocks": blocks},
        ) as r:
            posted = await r.json()
        async with http.get(
            slack.api_url + "conversations.history", params={"token": TOKEN, "channel": "C111"}
        ) as r:
            history = await r.json()
    assert posted["ok"] and posted["message"]["blocks"][0]["text"]["text"] == "hi"
    assert history["messages"][0]["ts"] == posted["ts"]
    call = slack.calls_to("chat.postMessage")[0]
    assert (call.token, call.http_method, "token" in call.args) == (TOKEN, "POST", False)
    assert slack.calls_to("conversations.history")[0].http_method == "GET"


async def test_api_url_needs_a_started_server() -> None:
    with pytest.raises(StandInError):
        _ = SlackStandIn().api_url


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def test_messages_slack_refuses_are_refused_with_slacks_answer(
    client: AsyncWebClient, mention: dict[str, Any]
) -> None:
    channel = mention["channel"]
    long = await api_error(
        client.chat_postMessage(channel=channel, text="t", blocks=[_section("x" * 3001)])
    )
    assert long["error"] == "invalid_blocks"
    assert long["response_metadata"]["messages"] == [
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]
    emoji = await api_error(
        client.chat_postMessage(channel=channel, text="t", blocks=[_section("😀" * 1501)])
    )
    assert emoji["error"] == "invalid_blocks"  # counted as Slack's clients count: UTF-16
    button = {"type": "actions", "elements": [{"type": "button", "action_id": "a",
              "text": {"type": "plain_text", "text": "b" * 76}, "value": "v" * 2001}]}  # fmt: skip
    refused = await api_error(client.chat_postMessage(channel=channel, text="t", blocks=[button]))
    assert sorted(refused["errors"]) == [
        "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]",
        "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]",
    ]
    many = [_section("y")] * 51
    assert (await api_error(client.chat_postMessage(channel=channel, text="t", blocks=many)))[
        "error"
    ] == "invalid_blocks"
    heavy = [_section("z" * 2900)] * 5  # each fits; together more than a message holds
    assert (await api_error(client.chat_postMessage(channel=channel, text="t", blocks=heavy)))[
        "error"
    ] == "msg_blocks_too_long"
    text = await api_error(client.chat_postMessage(channel=channel, text="t" * 40_001))
    assert text["error"] == "msg_too_long"
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}
    assert (await api_error(client.chat_postMessage(channel=channel, text="t", blocks=[context])))[
        "error"
    ] == "invalid_blocks"
    posted = await client.chat_postMessage(channel=channel, text="ok", blocks=[_section("fine")])
    update = client.chat_update(
        channel=channel, ts=posted["ts"], text="t", blocks=[_section("u" * 3001)]
    )
    assert (await api_error(update))["error"] == "invalid_blocks"


async def test_views_slack_refuses_are_refused(client: AsyncWebClient) -> None:
    field = {"type": "input", "block_id": "f", "label": {"type": "plain_text", "text": "F"},
             "element": {"type": "plain_text_input", "action_id": "f",
                         "initial_value": "i" * 3001}}  # fmt: skip
    view = {"type": "modal", "title": {"type": "plain_text", "text": "A title too long to fit"},
            "submit": {"type": "plain_text", "text": "Go"}, "blocks": [field]}  # fmt: skip
    refused = await api_error(client.views_open(trigger_id="1.2.x", view=view))
    assert refused["error"] == "invalid_arguments"
    assert sorted(refused["response_metadata"]["messages"]) == [
        "[ERROR] must be less than 3001 characters [json-pointer:/view/blocks/0/element/"
        "initial_value]",
    ]
    view["title"] = {"type": "plain_text", "text": "x" * 25}
    field["element"]["initial_value"] = "ok"
    assert "[json-pointer:/view/title/text]" in str(
        await api_error(client.views_open(trigger_id="1.2.x", view=view))
    )
    del view["submit"]
    view["title"]["text"] = "Fine"
    assert "/view/submit" in str(await api_error(client.views_open(trigger_id="1.2.x", view=view)))
    home = {"type": "home", "blocks": [_section("h")] * 101}
    assert (await api_error(client.views_publish(user_id="W222", view=home)))[
        "error"
    ] == "invalid_arguments"
    huge = {"type": "home", "blocks": [_section("a" * 2900)] * 90}
    assert (await api_error(client.views_publish(user_id="W222", view=huge)))[
        "error"
    ] == "view_too_large"


async def test_a_failure_can_pick_its_call(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", error="invalid_blocks",
                    when=lambda args: bool(args.get("blocks")))  # fmt: skip
    await client.chat_postMessage(channel="C111", text="plain text goes through")
    refused = await api_error(
        client.chat_postMessage(channel="C111", text="t", blocks=[_section("b")])
    )
    assert refused["error"] == "invalid_blocks"
    await client.chat_postMessage(channel="C111", text="t", blocks=[_section("b")])  # only once
