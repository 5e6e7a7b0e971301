"""`airlock serve` as attackers meet it: a real process over signed HTTP, its log kept.

Requests are built from Slack's recorded payload samples and signed as Slack signs them;
the process's stderr goes to a file, so a test can read what one request cost in log.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp

from agent_core.audit.trail import GLOBAL
from agent_core.store import Store, open_store
from agent_core.testing.anthropic_server import AnthropicStandIn, tool_use_reply
from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_requests import (
    SlackRequest,
    SlackRequestSigner,
    load_json_payload,
    load_text_payload,
    post_to_bot,
)
from agent_core.testing.slack_server import RESPONSE_URL, SlackCall, SlackStandIn
from tests.e2e.test_serve import clean_env
from tests.support import airlock_serve

SECRET = "attack-signing-secret"
TOKEN = "xoxb-attacks"
KEY = "sk-ant-attacks"
MENTION = load_json_payload("app_mention.json")
DM = load_json_payload("message_im.json")
CLICK = load_json_payload("block_actions.json")
SUBMISSION = load_json_payload("view_submission.json")
COMMAND = dict(parse_qsl(load_text_payload("slash_command.txt")))

ADMIN = "U0ADMIN"
APPROVER = CLICK["user"]["id"]
REQUESTER = MENTION["event"]["user"]
OUTSIDER = "W0OUTSIDER"
CHANNEL = MENTION["event"]["channel"]
APPROVAL_CHANNEL = "C0APPROVALS"

_serial = itertools.count(1)


def has_buttons(call: SlackCall) -> bool:
    """A message with an actions block (an approval card)."""
    return any(b.get("type") == "actions" for b in call.args.get("blocks") or [])


def says(text: str) -> Callable[[SlackCall], bool]:
    """A call whose text contains ``text``."""
    return lambda call: text in (call.args.get("text") or "")


def parked_plan(description: str) -> Any:
    """A planner reply whose one step is HIGH, so the run waits for its plan to be approved."""
    step = {"id": "s1", "description": description, "required_tools": [], "depends_on": [],
            "risk_level": "high"}  # fmt: skip
    return tool_use_reply("submit_plan", {"subtasks": [step]})


def ts_now() -> str:
    """A fresh, unique Slack message ts."""
    n = next(_serial)
    return f"{int(time.time())}.{n:06d}"


@dataclass(kw_only=True)
class Served:
    """A running `airlock serve`, its stand-ins, its store and its log."""

    url: str
    slack: SlackStandIn
    anthropic: AnthropicStandIn
    store: Store
    signer: SlackRequestSigner
    log: Path
    http: aiohttp.ClientSession
    sent: list[SlackRequest] = field(default_factory=list)

    async def send(self, request: SlackRequest) -> int:
        """POST ``request``; the HTTP status."""
        self.sent.append(request)
        status, _ = await post_to_bot(self.url, request, session=self.http, timeout=15)
        return status

    async def mention(self, text: str, *, user: str = REQUESTER, channel: str = CHANNEL,
                      ts: str | None = None, thread_ts: str | None = None) -> str:  # fmt: skip
        """A signed app mention saying ``text``; the ts of the message (its thread)."""
        body = copy.deepcopy(MENTION)
        ts = ts or ts_now()
        body["event_id"] = f"EvM{next(_serial):08d}"
        body["event"].update(text=f"<@W111> {text}", user=user, channel=channel, ts=ts,
                             event_ts=ts)  # fmt: skip
        if thread_ts:
            body["event"]["thread_ts"] = thread_ts
        assert await self.send(self.signer.event(body)) == 200
        return ts

    def message_body(self, text: str, *, user: str, channel: str, thread_ts: str | None = None,
                     channel_type: str = "channel") -> dict[str, Any]:  # fmt: skip
        """A signed-ready `message` event (a DM with ``channel_type="im"``)."""
        body = copy.deepcopy(DM)
        ts = ts_now()
        body["event_id"] = f"EvD{next(_serial):08d}"
        body["event"].update(text=text, user=user, channel=channel, ts=ts, event_ts=ts,
                             channel_type=channel_type, client_msg_id=f"msg-{ts}")  # fmt: skip
        if thread_ts:
            body["event"]["thread_ts"] = thread_ts
        return body

    async def message(self, text: str, **where: Any) -> str:
        """A signed `message` event; the new message's ts."""
        body = self.message_body(text, **where)
        assert await self.send(self.signer.event(body)) == 200
        return str(body["event"]["ts"])

    def command_form(self, text: str, *, user: str, channel: str = CHANNEL) -> dict[str, str]:
        """The form of `/agent <text>` typed by ``user``, with a fresh trigger id."""
        fields = {"command": "/agent", "text": text, "user_id": user, "channel_id": channel}
        url = self.slack.response_url(user=user, channel=channel)
        return COMMAND | fields | {"trigger_id": f"{next(_serial)}.trigger", "response_url": url}

    async def agent(self, text: str, user: str, *, channel: str = CHANNEL) -> str:
        """`/agent <text>` typed by ``user``; the private reply's text (on its response_url)."""
        form = self.command_form(text, user=user, channel=channel)
        assert await self.send(self.signer.command(form)) == 200
        url = form["response_url"]
        reply = await self.slack.wait_for_call(RESPONSE_URL, lambda c: c.url == url, timeout=30)
        assert reply.args["response_type"] == "ephemeral"
        return str(reply.args["text"])

    def click_body(self, action_id: str, value: str, *, user: str, channel: str = CHANNEL,
                   message_ts: str = "111.222") -> dict[str, Any]:  # fmt: skip
        """A button click on a card in ``channel``."""
        body = copy.deepcopy(CLICK)
        body["user"]["id"] = user
        body["trigger_id"] = f"{next(_serial)}.click"
        body["container"].update(channel_id=channel, message_ts=message_ts, is_ephemeral=False)
        body["channel"]["id"] = channel
        body["actions"][0].update(action_id=action_id, value=value,
                                  action_ts=f"{time.time():.6f}")  # fmt: skip
        return body

    async def click(self, action_id: str, value: str, *, user: str, **where: Any) -> int:
        """Click a button; the HTTP status."""
        return await self.send(
            self.signer.interaction(self.click_body(action_id, value, user=user, **where))
        )

    def log_text(self) -> str:
        """Everything the process logged so far."""
        return self.log.read_text(errors="replace")

    async def snapshot(self) -> dict[str, Any]:
        """What a request could change: runs, approvals, halt, audit trail."""
        runs = await self.store.list_runs(limit=10_000)
        approvals = {}
        for run in runs:
            for approval in await self.store.list_pending_approvals(run_id=run.id):
                approvals[approval.id] = approval.model_dump()
        audit = {r: len(await self.store.list_audit(r)) for r in [GLOBAL, *(r.id for r in runs)]}
        halt = await self.store.get_halt()
        return {
            "runs": [(r.id, r.status, r.version) for r in runs],
            "approvals": approvals,
            "halt": halt.model_dump() if halt else None,
            "audit": audit,
        }


@asynccontextmanager
async def serve_bot(tmp_path: Path, **settings: str) -> AsyncIterator[Served]:
    """`airlock serve` (HTTP, SQLite, default settings plus ``settings``) and its stand-ins."""
    port, data = free_port(), tmp_path / "data"
    log = tmp_path / "serve.log"
    async with SlackStandIn(bot_token=TOKEN) as slack, AnthropicStandIn(api_key=KEY) as anthropic:
        env = clean_env(
            SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=anthropic.base_url,
            AIRLOCK_DATA_DIR=str(data), AIRLOCK_PORT=str(port), AIRLOCK_APPROVERS=APPROVER,
            AIRLOCK_ADMINS=ADMIN, AIRLOCK_LLM_MAX_RETRIES="0", **settings,
        )  # fmt: skip
        with log.open("wb") as sink:
            async with airlock_serve(env, tmp_path, port, stderr=sink.fileno()):
                store = await open_store(f"sqlite:///{data / 'airlock.db'}")
                try:
                    async with aiohttp.ClientSession() as http:
                        yield Served(url=f"http://127.0.0.1:{port}/slack/events", slack=slack,
                                     anthropic=anthropic, store=store, log=log, http=http,
                                     signer=SlackRequestSigner(SECRET))  # fmt: skip
                finally:
                    await store.close()
