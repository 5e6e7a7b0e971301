"""Attacks on what airlock shows people in Slack, through the real `airlock serve`.

Every request goes to the bot signed as Slack signs it; the bot talks to the Slack and
Anthropic stand-ins, and the Slack stand-in refuses what Slack refuses (invalid_blocks,
msg_blocks_too_long, msg_too_long, a view over its limits). The model's replies are hostile:
mentions, broadcasts, disguised links, direction overrides, NUL, code fences, a harmless head
with a dangerous tail, names and texts longer than any Block Kit field.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent_core.approvals.gate import approval_id as derived_id
from agent_core.models import (
    Approval,
    ApprovalStatus,
    Plan,
    PlanSubject,
    Precedent,
    RiskLevel,
    Run,
    RunStatus,
    Subtask,
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
from agent_core.tools.mcp.config import public_name
from tests.attacks.long_name_mcp_server import TOOL as LONG_TOOL
from tests.e2e.test_serve import clean_env
from tests.support import airlock_serve, eventually, slash_command

SECRET = "attack-signing-secret"
TOKEN = "xoxb-attacks"
KEY = "sk-ant-attacks"
MENTION = load_json_payload("app_mention.json")
CLICK = load_json_payload("block_actions.json")
SUBMISSION = load_json_payload("view_submission.json")
DM = load_json_payload("message_im.json")
APPROVER = CLICK["user"]["id"]
REQUESTER = MENTION["event"]["user"]
ADMIN = "U0ADMIN"
CHANNEL = MENTION["event"]["channel"]
LONG_MCP = Path(__file__).with_name("long_name_mcp_server.py")

MARKUP = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U0VICTIM>",
    "<!subteam^S0EVIL>",
    "<https://evil.example|https://good.example>",
    "<#C0SECRET>",
    "<!date^1700000000^{date}|fake-date>",
]
INVISIBLE = ["\u202e", "\u2066", "\u200b", "\x00", "\x1b", "\ufeff", "\u2028", "\u00ad"]
HOSTILE = (
    " ".join(MARKUP) + " rm -rf /ho\u202emoc.live\u202c ``` *bold* _it_ ~gone~ ```"
    " nul\x00 zw\u200bsp \x1b[31mred\u2066iso\u2069 bom\ufeff ls\u2028ps sh\u00ady"
)


@dataclass(kw_only=True)
class Bot:
    """`airlock serve` with its stand-ins, its store and a way to talk to it as Slack does."""

    url: str
    slack: SlackStandIn
    anthropic: AnthropicStandIn
    store: Store
    signer: SlackRequestSigner
    workspace: Path
    sent: list[int] = field(default_factory=lambda: [0])

    def _serial(self) -> int:
        self.sent[0] += 1
        return self.sent[0]

    async def goal(self, text: str) -> str:
        """Mention the bot with ``text``; the ts of the mention (the run's thread)."""
        n = self._serial()
        body = copy.deepcopy(MENTION)
        ts = f"{int(time.time())}.{n:06d}"
        body["event"].update(text=f"<@W111> {text}", ts=ts, event_ts=ts, client_msg_id=f"m{n}")
        body["event_id"] = f"EvAttack{n}"
        assert (await post_to_bot(self.url, self.signer.event(body)))[0] == 200
        return ts

    async def reply(self, thread_ts: str, text: str) -> None:
        """The requester answers in the run's thread."""
        n = self._serial()
        body = copy.deepcopy(DM)
        body["event"].update(channel=CHANNEL, channel_type="channel", text=text, user=REQUESTER,
                             thread_ts=thread_ts, ts=f"{int(time.time())}.{n:06d}")  # fmt: skip
        body["event_id"] = f"EvReply{n}"
        assert (await post_to_bot(self.url, self.signer.event(body)))[0] == 200

    async def card(self, *, since: int = 0, timeout: float = 30) -> SlackCall:
        """The next approval request Slack took (a message with buttons)."""
        return await self.slack.wait_for_call(
            "chat.postMessage", lambda c: has_buttons(c) and c.response["ok"], since=since,
            timeout=timeout,
        )  # fmt: skip

    async def click(
        self, card: SlackCall, button: dict[str, Any], *, user: str = APPROVER
    ) -> tuple[int, str]:
        """Press ``button`` of the message ``card``."""
        body = copy.deepcopy(CLICK)
        body["user"]["id"] = user
        body["trigger_id"] = f"{time.time_ns()}.attack"
        body["container"] = {"type": "message", "message_ts": card.response["ts"],
                             "channel_id": card.response["channel"], "is_ephemeral": False,
                             "thread_ts": card.args.get("thread_ts")}  # fmt: skip
        body["channel"] = {"id": card.response["channel"], "name": "attacks"}
        body["actions"][0].update(action_id=button["action_id"], value=button.get("value", ""),
                                  block_id="b", text=button["text"])  # fmt: skip
        return await post_to_bot(self.url, self.signer.interaction(body), timeout=30)

    async def click_in_view(
        self, view: dict[str, Any], button: dict[str, Any], *, user: str = APPROVER
    ) -> tuple[int, str]:
        """Press ``button`` inside the open modal ``view`` (as Slack answers views.open)."""
        body = copy.deepcopy(CLICK)
        body["user"]["id"] = user
        body["trigger_id"] = f"{time.time_ns()}.attack"
        body["container"] = {"type": "view", "view_id": view["id"]}
        body.pop("channel", None)
        body["view"] = view
        body["actions"][0].update(action_id=button["action_id"], value=button.get("value", ""),
                                  block_id="b", text=button["text"])  # fmt: skip
        return await post_to_bot(self.url, self.signer.interaction(body), timeout=30)

    async def submit(
        self, view: dict[str, Any], value: str, *, user: str = APPROVER
    ) -> tuple[int, str]:
        """Submit the modal ``view`` with ``value`` typed in its one input."""
        [block] = [b for b in view["blocks"] if b["type"] == "input"]
        body = copy.deepcopy(SUBMISSION)
        body["user"]["id"] = user
        body["view"].update(id=view["id"], callback_id=view["callback_id"],
                            private_metadata=view["private_metadata"], hash=view["hash"],
                            state={"values": {block["block_id"]: {block["element"]["action_id"]: {
                                "type": "plain_text_input", "value": value}}}})  # fmt: skip
        return await post_to_bot(self.url, self.signer.interaction(body), timeout=30)

    async def command(self, text: str, user: str) -> SlackCall:
        """`/agent <text>` from ``user``; the private reply."""
        form = slash_command(self.slack, text, user=user, channel=CHANNEL)
        assert (await post_to_bot(self.url, self.signer.command(form)))[0] == 200
        url = form["response_url"]
        return await self.slack.wait_for_call(RESPONSE_URL, lambda c: c.url == url, timeout=30)

    async def finished(self, thread_ts: str, *, timeout: float = 30) -> str:
        """The run's answer in ``thread_ts`` (completed, failed, rejected ...), as it streamed."""

        def final(call: SlackCall) -> bool:
            return bool(call.response.get("ok")) and (
                call.response["message"].get("thread_ts") == thread_ts
            )

        stopped = await self.slack.wait_for_call("chat.stopStream", final, timeout=timeout)
        return str(stopped.response["message"]["text"])

    async def run_of(self, thread_ts: str) -> Run:
        return next(r for r in await self.store.list_runs() if r.thread_ts == thread_ts)


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    port, data, workspace = free_port(), tmp_path / "data", tmp_path / "workspace"
    workspace.mkdir()
    mcp = tmp_path / "mcp.json"
    server = {
        "command": sys.executable,
        "args": [str(LONG_MCP)],
        "default_risk": "high",
        "grantable": True,
    }  # the operator offers approve-for-this-run for its tools
    mcp.write_text(json.dumps({"servers": {"deployments_and_releases_prod": server}}))
    async with SlackStandIn(bot_token=TOKEN) as slack, AnthropicStandIn(api_key=KEY) as anthropic:
        slack.workspace.add_user(APPROVER, name="ana")
        slack.workspace.add_user(ADMIN, name="root")
        env = clean_env(
            SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=anthropic.base_url,
            AIRLOCK_DATA_DIR=str(data), AIRLOCK_PORT=str(port), AIRLOCK_APPROVERS=APPROVER,
            AIRLOCK_ADMINS=ADMIN, AIRLOCK_LLM_MAX_RETRIES="0",
            AIRLOCK_WORKSPACE_DIR=str(workspace), AIRLOCK_MCP_CONFIG=str(mcp),
        )  # fmt: skip
        async with airlock_serve(env, tmp_path, port):
            store = await open_store(f"sqlite:///{data / 'airlock.db'}")
            try:
                yield Bot(url=f"http://127.0.0.1:{port}/slack/events", slack=slack,
                          anthropic=anthropic, store=store, signer=SlackRequestSigner(SECRET),
                          workspace=workspace)  # fmt: skip
            finally:
                await store.close()


# -- what a person sees --------------------------------------------------------------------


def has_buttons(call: SlackCall) -> bool:
    return any(b.get("type") == "actions" for b in call.args.get("blocks") or [])


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value (keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def shown(calls: list[SlackCall]) -> str:
    """All the text the bot sent to Slack in ``calls``: messages, updates, views."""
    sent = [c.args for c in calls if c.method.startswith(("chat.", "views."))]
    return "\n".join(strings(sent))


def assert_inert(text: str) -> None:
    """No markup from the hostile text took effect; every invisible character is visible."""
    for markup in MARKUP:
        assert markup not in text, f"{markup!r} reached Slack as markup"
    for char in INVISIBLE:
        assert char not in text, f"U+{ord(char):04X} reached Slack unmarked"


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every button in ``blocks``: in actions blocks and as section accessories."""
    found = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    found += [b["accessory"] for b in blocks if (b.get("accessory") or {}).get("type") == "button"]
    return found


def button(blocks: list[dict[str, Any]], starts: str) -> dict[str, Any]:
    return next(b for b in buttons(blocks) if b["text"]["text"].startswith(starts))


def approval_id(card: SlackCall) -> str:
    return str(button(card.args["blocks"], "Approve")["value"])


async def read_whole(bot: Bot, card: SlackCall, label: str = "View") -> str:
    """Open the card's "View …" button and page through the modal to its end; all its text."""
    since = len(bot.slack.calls)
    assert (await bot.click(card, button(card.args["blocks"], label)))[0] == 200
    opened = await bot.slack.wait_for_call("views.open", since=since, timeout=30)
    view, pages = opened.response["view"], [opened.args["view"]]
    for _ in range(50):
        following = [b for b in buttons(view["blocks"]) if "Next" in b["text"]["text"]]
        if not following:
            break
        since = len(bot.slack.calls)
        assert (await bot.click_in_view(view, following[0]))[0] == 200
        updated = await bot.slack.wait_for_call("views.update", since=since, timeout=30)
        assert updated.response["ok"], updated.response
        view = updated.response["view"]
        pages.append(updated.args["view"])
    return "\n".join(strings(pages))


def code_of(text: str) -> str:
    """What the code blocks of ``text`` hold, joined (a long text spans several blocks)."""
    return "".join(re.findall(r"```(.*?)```", text, re.DOTALL))


def plan(*subtasks: tuple[str, str, str]) -> dict[str, Any]:
    return {"subtasks": [{"id": i, "description": d, "required_tools": [], "depends_on": [],
                          "risk_level": r} for i, d, r in subtasks]}  # fmt: skip


# -- 1. the card cut the call silently --------------------------------------------------------


async def test_a_hidden_tail_is_on_the_card_and_the_whole_call_is_one_click_away(
    bot: Bot,
) -> None:
    tail = "; echo X > pwned.txt"
    command = "echo " + "harmless " * 340 + tail  # a 3,000-character head, then the tail
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan(("s1", "tidy up", "low"))),
        tool_use_reply("run_command", {"command": command}),
        text_reply("tidied"),
    )
    thread = await bot.goal("tidy up")
    card = await bot.card()
    on_card = shown([card])
    assert "pwned.txt" in on_card  # the tail is on the card ...
    assert "more characters" in on_card  # ... and the card says that something was cut
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in card.args["blocks"])
    whole = await read_whole(bot, card)
    assert command.replace(">", "&gt;") in code_of(whole)  # every character of it, in order
    assert (await bot.click(card, button(card.args["blocks"], "Approve")))[0] == 200
    assert "completed" in await bot.finished(thread)
    assert (bot.workspace / "pwned.txt").exists()  # what ran is what the card showed


async def test_200_kb_of_arguments_make_a_valid_card_a_readable_whole_and_no_broken_edit(
    bot: Bot,
) -> None:
    blob = "".join(f"line {i:06d} <!here> \u202e\n" for i in range(9500)) + "THE-END"
    assert len(blob) > 200_000
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan(("s1", "store the blob", "low"))),
        tool_use_reply("write_file", {"path": "blob.txt", "content": blob}),
    )
    await bot.goal("store the blob")
    card = await bot.card()
    assert card.response["ok"]
    assert "THE-END" in shown([card]) and "more characters" in shown([card])
    whole = await read_whole(bot, card)
    assert "THE-END" in whole and "line 009499" in whole
    assert_inert(whole)

    since = len(bot.slack.calls)
    assert (await bot.click(card, button(card.args["blocks"], "Edit")))[0] == 200
    opened = await bot.slack.wait_for_call("views.open", since=since, timeout=30)
    assert opened.response["ok"], opened.response  # not a broken form
    assert not [b for b in opened.args["view"]["blocks"] if b["type"] == "input"]
    assert "too large to edit" in shown([opened])


# -- 2. an unchanged edit is the same call --------------------------------------------------


async def test_an_unchanged_edit_runs_the_identical_call(bot: Bot) -> None:
    command = "echo hi > f && echo 'token xoxb-1111-2222-abcdefghij' > /dev/null && cat f"
    arguments = {"command": command, "timeout_seconds": 10}
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan(("s1", "say hi", "low"))),
        tool_use_reply("run_command", arguments),
        text_reply("said hi"),
    )
    thread = await bot.goal("say hi")
    card = await bot.card()
    original = await bot.store.get_approval(approval_id(card))
    since = len(bot.slack.calls)
    assert (await bot.click(card, button(card.args["blocks"], "Edit")))[0] == 200
    view = (await bot.slack.wait_for_call("views.open", since=since, timeout=30)).response["view"]
    [field] = [b for b in view["blocks"] if b["type"] == "input"]
    prefilled = field["element"]["initial_value"]
    assert "&gt;" not in prefilled and "&amp;" not in prefilled  # JSON, not Slack markup
    assert "abcdefghij" not in prefilled  # the secret is masked in the form ...
    status, answer = await bot.submit(view, prefilled)  # ... and submitted unchanged
    assert status == 200 and not answer, answer
    edited = await bot.store.get_approval(original.id)
    assert edited.status is ApprovalStatus.APPROVED
    assert edited.digest == original.digest  # the identical call, the secret included
    assert isinstance(edited.subject, ToolCallSubject) and edited.subject.arguments == arguments
    assert "completed" in await bot.finished(thread)
    assert (bot.workspace / "f").read_text() == "hi\n"


async def test_an_edit_that_changes_a_masked_secret_is_refused_and_others_keep_it(
    bot: Bot,
) -> None:
    command = "curl -H 'Authorization: Bearer abcdefghijklmnop1234' https://example.com"
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan(("s1", "call it", "low"))),
        tool_use_reply("run_command", {"command": command}),
    )
    await bot.goal("call it")
    card = await bot.card()
    since = len(bot.slack.calls)
    assert (await bot.click(card, button(card.args["blocks"], "Edit")))[0] == 200
    view = (await bot.slack.wait_for_call("views.open", since=since, timeout=30)).response["view"]
    prefilled = json.loads(
        next(b for b in view["blocks"] if b["type"] == "input")["element"]["initial_value"]
    )
    half = dict(prefilled, command=prefilled["command"].replace("curl", "curl -v"))
    status, answer = await bot.submit(view, json.dumps(half))
    assert status == 200 and json.loads(answer)["response_action"] == "errors"
    assert (await bot.store.get_approval(approval_id(card))).status is ApprovalStatus.PENDING


# -- 3. model text reaches Slack as markup ----------------------------------------------------


async def test_model_text_is_inert_on_every_surface_of_a_run(bot: Bot) -> None:
    steps = plan(("s1<!here>\u202e", HOSTILE, "high"), ("s2`*x*`", "then " + HOSTILE, "low"))
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", steps),
        tool_use_reply("ask_human", {"question": "which one? " + HOSTILE}),
        text_reply("step one: " + HOSTILE),
        text_reply("all done: " + HOSTILE),
    )
    thread = await bot.goal("do it " + HOSTILE)
    card = await bot.card()
    assert "⟨U+202E⟩" in shown([card]) and "&lt;!channel&gt;" in shown([card])
    since = len(bot.slack.calls)
    assert (await bot.click(card, button(card.args["blocks"], "Approve")))[0] == 200
    await bot.slack.wait_for_call("chat.postMessage", lambda c: "which one?" in
                                  str(c.args.get("text")), since=since, timeout=30)  # fmt: skip
    await bot.reply(thread, "the first one")
    done = await bot.finished(thread)
    assert "completed" in done
    everything = shown(bot.slack.calls)
    assert_inert(everything)
    assert "⟨U+0000⟩" in everything and "⟨U+200B⟩" in everything
    carrying = [c for c in bot.slack.calls_to("chat.postMessage") if "good.example" in shown([c])]
    assert carrying and all(c.args.get("unfurl_links") is False for c in carrying)  # no previews
    assert everything.count("```") % 2 == 0  # no code block left open or closed early

    home = await open_home(bot, ADMIN, 1)
    assert_inert(shown([home]))
    status = await bot.command("status", ADMIN)
    audit = await bot.command(f"audit {(await bot.run_of(thread)).id}", ADMIN)
    assert_inert(shown([status, audit]))


# -- 4. cards that cannot be built --------------------------------------------------------------


async def test_a_sixty_step_plan_is_a_valid_card_and_readable_whole(bot: Bot) -> None:
    filler = "x" * 160
    sixty = [(f"s{i}", f"step {i} {filler} END{i:02d}", "high" if i == 1 else "low")
             for i in range(1, 61)]  # fmt: skip
    bot.anthropic.enqueue(tool_use_reply("submit_plan", plan(*sixty)))
    thread = await bot.goal("sixty steps")
    card = await bot.card()
    assert card.response["ok"] and len(card.args["blocks"]) <= 50

    async def parked() -> bool:
        run = await bot.run_of(thread)
        assert not run.status.is_final, run.error
        return run.status is RunStatus.AWAITING_APPROVAL

    await eventually(parked, timeout=30)
    whole = await read_whole(bot, card)
    assert all(f"END{i:02d}" in whole for i in range(1, 61))
    in_thread = shown([c for c in bot.slack.calls_to("chat.postMessage") if not has_buttons(c)])
    assert all(f"END{i:02d}" in in_thread for i in range(1, 61))


async def test_a_64_character_tool_name_fits_its_buttons_and_its_confirm_names_it(
    bot: Bot,
) -> None:
    tool = public_name("deployments_and_releases_prod", LONG_TOOL)
    assert len(tool) == 64
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan(("s1", "deploy", "low"))),
        tool_use_reply(tool, {"target": "web"}),
        tool_use_reply(tool, {"target": "api"}),
        text_reply("deployed"),
    )
    thread = await bot.goal("deploy")
    card = await bot.card()
    assert card.response["ok"]
    grant = button(card.args["blocks"], "Approve deployments")
    assert len(grant["text"]["text"]) <= 75 and "…" in grant["text"]["text"]
    assert tool[:40] in grant["confirm"]["text"]["text"]  # the dialog names the tool
    assert (await bot.click(card, grant))[0] == 200
    assert "completed" in await bot.finished(thread)
    in_thread = [c for c in bot.slack.calls_to("chat.postMessage") if c.args.get("thread_ts")]
    assert len([c for c in in_thread if has_buttons(c)]) == 1


async def test_a_critical_approve_asks_to_confirm_naming_the_tool(bot: Bot) -> None:
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan(("s1", "clean", "low"))),
        tool_use_reply("run_command", {"command": "rm -rf ./cache"}),
    )
    await bot.goal("clean")
    card = await bot.card()
    approve = button(card.args["blocks"], "Approve")
    assert "critical" in str(card.args["blocks"][0]).lower()
    assert "run_command" in str(approve["confirm"])


async def test_a_5000_character_reject_reason_settles_the_card(bot: Bot) -> None:
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan(("s1", "restart", "low"))),
        tool_use_reply("run_command", {"command": "systemctl restart web"}),
        text_reply("did not restart"),
    )
    thread = await bot.goal("restart")
    card = await bot.card()
    since = len(bot.slack.calls)
    assert (await bot.click(card, button(card.args["blocks"], "Reject with")))[0] == 200
    view = (await bot.slack.wait_for_call("views.open", since=since, timeout=30)).response["view"]
    reason = ("no: " + HOSTILE + " ") * 40
    assert len(reason) > 5000
    assert (await bot.submit(view, reason))[0] == 200
    settled = await bot.slack.wait_for_call(
        "chat.update", lambda c: c.args.get("ts") == card.response["ts"], timeout=30
    )
    assert settled.response["ok"], settled.response
    assert_inert(shown([settled]))
    assert "completed" in await bot.finished(thread)  # the agent went on
    assert (await bot.store.get_approval(approval_id(card))).status is ApprovalStatus.REJECTED


async def test_a_card_slack_refuses_is_posted_again_plainly_and_still_works(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", error="invalid_blocks",
                        when=lambda args: bool(args.get("blocks")))  # fmt: skip
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan(("s1", "restart", "low"))),
        tool_use_reply("run_command", {"command": "echo restarted"}),
        text_reply("restarted"),
    )
    thread = await bot.goal("restart")
    card = await bot.card()
    assert card.response["ok"]
    assert (await bot.click(card, button(card.args["blocks"], "Approve")))[0] == 200
    assert "completed" in await bot.finished(thread)


async def test_a_card_that_cannot_be_posted_closes_its_approval_and_frees_the_run(
    bot: Bot,
) -> None:
    bot.slack.fail_next("chat.postMessage", error="invalid_blocks", times=5,
                        when=lambda args: bool(args.get("blocks")))  # fmt: skip
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan(("s1", "restart", "low"))),
        tool_use_reply("run_command", {"command": "echo restarted"}, id="toolu_unposted"),
        text_reply("could not restart: nobody was asked"),
    )
    thread = await bot.goal("restart")
    told = await bot.slack.wait_for_call(
        "chat.postMessage", lambda c: "could not be posted" in str(c.args.get("text")), timeout=30
    )
    assert told.args["thread_ts"] == thread
    assert "completed" in await bot.finished(thread)
    run = await bot.run_of(thread)
    approval = await bot.store.get_approval(derived_id(run.id, "toolu_unposted", 0))
    assert approval.status is ApprovalStatus.CANCELLED
    assert not await bot.store.list_pending_approvals()


# -- App Home opens whatever the store holds --------------------------------------------------


async def open_home(bot: Bot, user: str, n: int) -> SlackCall:
    since = len(bot.slack.calls)
    body = copy.deepcopy(MENTION)
    body["event_id"] = f"EvHome{n}{bot._serial()}"
    body["event"] = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home",
                     "event_ts": f"{int(time.time())}.00{n}"}  # fmt: skip
    assert (await post_to_bot(bot.url, bot.signer.event(body)))[0] == 200
    return await bot.slack.wait_for_call("views.publish", since=since, timeout=30)


async def test_app_home_opens_with_hostile_huge_and_many_records(bot: Bot) -> None:
    for i in range(15):
        await bot.store.create_run(Run(goal=f"goal {i} " + HOSTILE * 30, requester=REQUESTER,
                                       status=RunStatus.AWAITING_APPROVAL))  # fmt: skip
    run = await bot.store.create_run(Run(goal=HOSTILE, requester=REQUESTER))
    tool = public_name("deployments_and_releases_prod", LONG_TOOL)
    precedent = Precedent(outcome="rejected " + HOSTILE, tool=tool, call=HOSTILE * 20,
                          by="U0ANA", at=run.created_at, reason=HOSTILE * 100)  # fmt: skip
    huge = {"content": ("x" * 1000 + HOSTILE) * 200, tool: HOSTILE}
    for i in range(12):
        subject = ToolCallSubject(subtask_id=f"s{i}{HOSTILE}", tool=tool, arguments=huge,
                                  preview=HOSTILE * 300)  # fmt: skip
        await bot.store.create_approval(Approval(
            run_id=run.id, subject=subject, risk=RiskLevel.HIGH, requester=REQUESTER,
            precedents=[precedent] * 3, approvers=["U0ANA", HOSTILE],
        ))  # fmt: skip
    sixty = Plan(subtasks=[Subtask(id=f"s{i}", description=HOSTILE * 2) for i in range(60)])
    await bot.store.create_approval(
        Approval(
            run_id=run.id,
            subject=PlanSubject(plan=sixty),
            risk=RiskLevel.CRITICAL,
            requester=REQUESTER,
        )
    )
    for n, user in enumerate((APPROVER, ADMIN)):
        home = await open_home(bot, user, n)
        assert home.response["ok"], home.response
        assert_inert(shown([home]))
        assert "airlock_approve" in json.dumps(home.args["view"])


# -- the MEDIUM notice shows the call ---------------------------------------------------------


async def test_the_medium_notice_shows_the_whole_call(bot: Bot) -> None:
    url = "http://127.0.0.1:9/" + "a/" * 700 + "?q=<!channel>&next=\u202egro.live&END=1"
    long_url = "http://127.0.0.1:9/" + "b" * 6000 + "/LAST"
    bot.anthropic.enqueue(
        tool_use_reply("submit_plan", plan(("s1", "look", "low"))),
        tool_use_reply("http_request", {"method": "GET", "url": url}),
        tool_use_reply("http_request", {"method": "GET", "url": long_url}),
        text_reply("looked"),
    )
    thread = await bot.goal("look")
    await bot.finished(thread)
    notices = [c for c in bot.slack.calls_to("chat.postMessage")
               if "http_request" in str(c.args.get("text"))]  # fmt: skip
    assert len(notices) == 2
    first, second = (shown([n]) for n in notices)
    assert "END=1" in first and "a/" * 700 in first and "(medium)" in first
    assert_inert(first)
    assert "LAST" in second and "more characters" in second
    assert all(len(n.args["text"]) <= 4000 for n in notices)
