"""Signed requests to the bot, checked against slack_sdk and a real Bolt AsyncApp over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncSay
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.errors import StandInError
from agent_core.testing.slack_requests import (
    PAYLOADS_ENV,
    SlackRequest,
    SlackRequestSigner,
    load_json_payload,
    load_payload,
    load_text_payload,
    payloads_dir,
    post_to_bot,
)
from agent_core.testing.slack_server import SlackStandIn
from tests.support import missing

TOKEN = "xoxb-test"
SECRET = "airlock-test-signing-secret"
Seen = asyncio.Queue[tuple[str, dict[str, Any]]]


class FixedClock(Clock):
    """A clock stuck at one instant, for slack_sdk's verifier."""

    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


# -- the signer and the builders ------------------------------------------------------------


def test_signer_reproduces_the_known_slack_signature() -> None:
    meta = load_json_payload("slash_command_signed.meta.json")
    body = load_text_payload("slash_command_signed.txt")
    signer = SlackRequestSigner(meta["signing_secret"])
    assert signer.sign(body, int(meta["timestamp"])) == meta["valid_signature"]
    request = signer.command(body, timestamp=int(meta["timestamp"]))
    assert request.headers["X-Slack-Signature"] == meta["valid_signature"]


def test_slack_sdk_verifier_accepts_what_the_clock_stamps() -> None:
    signer = SlackRequestSigner(SECRET, clock=lambda: 1_700_000_000.0)
    request = signer.event(load_json_payload("app_mention.json"))
    assert request.headers["X-Slack-Request-Timestamp"] == "1700000000"
    verifier = SignatureVerifier(SECRET, clock=FixedClock(1_700_000_000))
    assert verifier.is_valid_request(request.body, request.headers)
    verifier.clock = FixedClock(1_700_000_000 + 301)
    assert not verifier.is_valid_request(request.body, request.headers)


def test_interaction_body_is_byte_for_byte_what_bolts_tests_send() -> None:
    signer = SlackRequestSigner(SECRET)
    for name in ("block_actions", "view_submission"):
        built = signer.interaction(load_json_payload(f"{name}.json"), timestamp=1)
        assert built.body == load_text_payload(f"{name}_form.txt")
        assert built.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert json.loads(parse_qs(built.body)["payload"][0]) == load_json_payload(f"{name}.json")


def test_event_and_command_headers() -> None:
    signer = SlackRequestSigner(SECRET, clock=lambda: 1234.9)
    event = signer.event(load_json_payload("message_im.json"), retry_num=2)
    assert event.headers["Content-Type"] == "application/json"
    assert (event.headers["X-Slack-Retry-Num"], event.headers["X-Slack-Retry-Reason"]) == (
        "2",
        "http_timeout",
    )
    assert json.loads(event.body) == load_json_payload("message_im.json")
    command = signer.command(
        dict((k, v[0]) for k, v in parse_qs(load_text_payload("slash_command.txt")).items())
    )
    assert parse_qs(command.body)["command"] == ["/hello-world"]
    assert "X-Slack-Retry-Num" not in command.headers
    assert command.headers["X-Slack-Request-Timestamp"] == "1234"
    assert command.headers["X-Slack-Signature"] == signer.sign(command.body, 1234)


def test_payload_folder_is_overridable_and_must_exist(tmp_path: Path) -> None:
    assert (payloads_dir() / "SOURCES.md").is_file()
    (tmp_path / "tiny.json").write_text('{"type": "event_callback"}')
    (tmp_path / "tiny.txt").write_text("a=b\r\n")
    assert payloads_dir({PAYLOADS_ENV: str(tmp_path)}) == tmp_path
    assert load_payload("tiny.json", folder=tmp_path) == {"type": "event_callback"}
    assert load_payload("tiny.txt", folder=tmp_path) == "a=b\r\n"
    with pytest.raises(StandInError, match=PAYLOADS_ENV):
        payloads_dir({PAYLOADS_ENV: str(tmp_path / "absent")})
    with pytest.raises(StandInError, match=r"nope\.json"):
        load_payload("nope.json", folder=tmp_path)


# -- a real Bolt app behind real HTTP ----------------------------------------------------


@dataclass(kw_only=True)
class Bot:
    """A Bolt app served on an ephemeral port, and what its listeners saw."""

    url: str
    """Where Slack would POST: ``http://127.0.0.1:PORT/slack/events``."""
    seen: Seen
    """(listener kind, payload) in the order the listeners ran."""


def build_app(slack: SlackStandIn, seen: Seen) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=TOKEN, base_url=slack.api_url), signing_secret=SECRET
    )

    @app.event("app_mention")
    async def mention(event: dict[str, Any], say: AsyncSay) -> None:
        await say(text="on it", thread_ts=event["ts"])
        seen.put_nowait(("mention", event))

    @app.command("/hello-world")
    async def command(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack(text="got it")
        seen.put_nowait(("command", command))

    @app.action("a")
    async def action(ack: AsyncAck, action: dict[str, Any]) -> None:
        await ack()
        seen.put_nowait(("action", action))

    @app.view("view-id")
    async def submission(ack: AsyncAck, view: dict[str, Any]) -> None:
        await ack()
        seen.put_nowait(("view", view))

    return app


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(bot_token=TOKEN) as standin:
        yield standin


@pytest.fixture
async def bot(slack: SlackStandIn) -> AsyncIterator[Bot]:
    seen: Seen = asyncio.Queue()
    runner = web.AppRunner(build_app(slack, seen).web_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Bot(url=f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events", seen=seen)
    finally:
        await runner.cleanup()


@pytest.fixture
def signer() -> SlackRequestSigner:
    return SlackRequestSigner(SECRET)


async def deliver(bot: Bot, request: SlackRequest) -> tuple[int, str, str, dict[str, Any]]:
    """POST ``request``; return status, body, and what the next listener to run saw."""
    status, text = await post_to_bot(bot.url, request)
    assert status == 200, text
    kind, payload = await asyncio.wait_for(bot.seen.get(), timeout=2)
    return status, text, kind, payload


async def test_app_mention_reaches_the_listener_which_replies_through_the_standin(
    bot: Bot,
    slack: SlackStandIn,
    signer: SlackRequestSigner,
) -> None:
    body = load_json_payload("app_mention.json")
    _, _, kind, event = await deliver(bot, signer.event(body))
    assert (kind, event["text"], event["user"]) == ("mention", "<@W111> Hi there!", "W222")
    reply = await slack.wait_for_call("chat.postMessage")
    assert (reply.args["channel"], reply.args["thread_ts"]) == ("C111", body["event"]["ts"])
    assert slack.calls_to("auth.test"), "Bolt checks its token with auth.test on first use"


async def test_a_retried_event_is_still_delivered(
    bot: Bot,
    signer: SlackRequestSigner,
) -> None:
    request = signer.event(load_json_payload("app_mention.json"), retry_num=1)
    _, _, kind, event = await deliver(bot, request)
    assert (kind, event["event_ts"]) == ("mention", "1595926230.009600")


async def test_slash_command(bot: Bot, signer: SlackRequestSigner) -> None:
    _, text, kind, command = await deliver(
        bot, signer.command(load_text_payload("slash_command.txt"))
    )
    assert (kind, command["command"], command["text"], command["user_id"]) == (
        "command",
        "/hello-world",
        "Hi",
        "W111",
    )
    assert text == "got it"


async def test_block_actions_click(bot: Bot, signer: SlackRequestSigner) -> None:
    _, _, kind, action = await deliver(
        bot, signer.interaction(load_text_payload("block_actions_form.txt"))
    )
    assert (kind, action["action_id"], action["value"]) == ("action", "a", "click_me_123")


async def test_view_submission(bot: Bot, signer: SlackRequestSigner) -> None:
    _, _, kind, view = await deliver(
        bot, signer.interaction(load_text_payload("view_submission_form.txt"))
    )
    assert (kind, view["callback_id"], view["private_metadata"]) == (
        "view",
        "view-id",
        "This is for you!",
    )
    assert view["state"]["values"]["hspI"]["maBWU"]["value"] == "test"


@pytest.mark.parametrize("forged", ["wrong secret", "stale", "from the future", "body changed"])
async def test_bolt_refuses_forged_or_stale_requests(bot: Bot, forged: str) -> None:
    body = load_json_payload("app_mention.json")
    now = int(time.time())
    request = {
        "wrong secret": lambda: SlackRequestSigner("not-the-secret").event(body),
        "stale": lambda: SlackRequestSigner(SECRET).event(body, timestamp=now - 5 * 60 - 2),
        "from the future": lambda: SlackRequestSigner(SECRET).event(body, timestamp=now + 400),
        "body changed": lambda: SlackRequest(
            body=json.dumps({**body, "event_id": "Ev999"}),
            headers=SlackRequestSigner(SECRET).event(body).headers,
        ),
    }[forged]()
    status, text = await post_to_bot(bot.url, request)
    assert (status, json.loads(text)) == (401, {"error": "invalid request"})
    assert bot.seen.empty()


def test_the_shipped_payloads_match_the_shared_samples() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "slack-payloads"
    if not shared.is_dir():
        missing(f"no shared Slack samples at {shared} to compare the shipped copy with")
    shipped = payloads_dir({})
    names = sorted(p.name for p in shared.iterdir())
    assert sorted(p.name for p in shipped.iterdir()) == names
    for name in names:
        assert (shipped / name).read_bytes() == (shared / name).read_bytes(), name
