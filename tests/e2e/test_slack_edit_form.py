"""Edit… as a form made from the tool's JSON Schema, through the real Bolt app over signed
HTTP: exact prefills, an unchanged form is the identical call, and the form path is held to
the same schema and risk checks as the raw JSON (an edit that makes a command destructive is
asked again at CRITICAL, never approved on one click)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.approvals import (
    Authority,
    DecisionService,
    RiskPolicy,
    edit_risk_check,
    schema_edit_check,
)
from agent_core.audit.trail import Audit
from agent_core.config import Settings
from agent_core.models import Approval, ApprovalStatus, RiskLevel, ToolCallSubject
from agent_core.store import Store, open_store
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackStandIn
from agent_core.tools import Tool, ToolRegistry
from agent_core.tools.builtins import run_command_tool
from bot.slack.app import build_app
from bot.slack.channel import SlackChannel
from bot.slack.listeners import register_approvals

SECRET = "edit-form-signing-secret"
TOKEN = "xoxb-edit-form"
CLICK = load_json_payload("block_actions.json")
SUBMISSION = load_json_payload("view_submission.json")
ALICE, BOB = "W111", "W333"


async def _never(arguments: dict[str, object], context: object) -> str:
    raise AssertionError("not called in these tests")


SCALE = Tool(
    name="scale", description="Scale a service.", risk=RiskLevel.HIGH, handler=_never,  # type: ignore[arg-type]
    input_schema={"type": "object", "required": ["service", "replicas"], "properties": {
        "service": {"type": "string", "description": "Which <!channel> service"},
        "replicas": {"type": "integer", "minimum": 0},
        "ratio": {"type": "number"},
        "dry_run": {"type": "boolean"},
        "password": {"type": "string"},
        "labels": {"type": "object"},
        "note": {"type": "string"},
    }},
)  # fmt: skip


@dataclass(kw_only=True)
class Bot:
    url: str
    slack: SlackStandIn
    store: Store
    signer: SlackRequestSigner
    schemas: dict[str, Any]

    async def open_edit(self, approval_id: str, user: str = ALICE) -> dict[str, Any]:
        since = len(self.slack.calls)
        body = copy.deepcopy(CLICK)
        body["user"]["id"] = user
        body["actions"][0].update(action_id="airlock_edit", value=approval_id)
        assert (await post_to_bot(self.url, self.signer.interaction(body)))[0] == 200
        opened = await self.slack.wait_for_call("views.open", since=since, timeout=10)
        view: dict[str, Any] = opened.args["view"]
        return view

    async def submit(self, view: dict[str, Any], changes: dict[str, str | None],
                     user: str = ALICE) -> dict[str, Any] | None:  # fmt: skip
        """Submit ``view`` with every input as prefilled, but ``changes`` (by label); the
        bot's answer (``response_action: errors``), or None when the modal closed."""
        values = {}
        for block in view["blocks"]:
            if block["type"] != "input":
                continue
            element, label = block["element"], block["label"]["text"]
            value = element.get("initial_value")
            if element["type"] == "static_select":
                value = (element.get("initial_option") or {}).get("value")
            value = changes.get(label, value)
            state: dict[str, Any] = {"type": element["type"]}
            if element["type"] == "static_select":
                state["selected_option"] = None if value is None else {
                    "text": {"type": "plain_text", "text": value}, "value": value}  # fmt: skip
            else:
                state["value"] = value or None  # Slack sends null for an empty box
            values[block["block_id"]] = {element["action_id"]: state}
        body = copy.deepcopy(SUBMISSION)
        body["user"]["id"] = user
        body["view"].update(callback_id=view["callback_id"],
                            private_metadata=view["private_metadata"],
                            state={"values": values})  # fmt: skip
        status, text = await post_to_bot(self.url, self.signer.interaction(body))
        assert status == 200
        return json.loads(text) if text else None


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    store = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}")
    registry = ToolRegistry([SCALE, run_command_tool(workspace=tmp_path)])
    schemas = {t.name: t.input_schema for t in registry}
    async with SlackStandIn(bot_token=TOKEN) as slack:
        client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
        app = build_app(Settings(slack_signing_secret=SECRET), client=client)
        service = DecisionService(
            store=store, audit=Audit(store=store), authority=Authority(approvers=[ALICE, BOB]),
            check_edit=schema_edit_check(registry),
            edit_risk=edit_risk_check(registry, RiskPolicy(), store),
        )  # fmt: skip
        register_approvals(app, service=service, channel=SlackChannel(client=client, store=store),
                           schemas=schemas.get)  # fmt: skip
        runner = web.AppRunner(app.web_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
        try:
            yield Bot(url=url, slack=slack, store=store, signer=SlackRequestSigner(SECRET),
                      schemas=schemas)  # fmt: skip
        finally:
            await runner.cleanup()
            await store.close()


ARGUMENTS = {"service": "web", "replicas": 3, "ratio": 0.1, "password": "hunter2-secret-value",
             "labels": {"team": "core"}, "note": "line one\nline two"}  # fmt: skip


async def pending(bot: Bot, tool: str = "scale", arguments: dict[str, Any] | None = None,
                  risk: RiskLevel = RiskLevel.HIGH) -> Approval:  # fmt: skip
    subject = ToolCallSubject(subtask_id="s1", tool=tool, arguments=arguments or ARGUMENTS)
    return await bot.store.create_approval(
        Approval(run_id="run_form", subject=subject, risk=risk, requester="W0OTHER")
    )


def boxes(view: dict[str, Any]) -> dict[str, Any]:
    """Each input's label -> its prefill."""
    found = {}
    for block in view["blocks"]:
        element = block["element"]
        initial = element.get("initial_value")
        if element["type"] == "static_select":
            initial = (element.get("initial_option") or {}).get("value")
        found[block["label"]["text"]] = initial
    return found


async def test_the_form_has_a_box_per_simple_argument_prefilled_exactly(bot: Bot) -> None:
    view = await bot.open_edit((await pending(bot)).id)
    shown = boxes(view)
    assert shown == {
        "service": "web", "replicas": "3", "ratio (optional)": "0.1",
        "dry_run (optional)": "-", "note (optional)": "line one\nline two",
        "Other arguments (JSON)": shown["Other arguments (JSON)"],
    }  # fmt: skip
    rest = json.loads(shown["Other arguments (JSON)"])
    assert rest["labels"] == {"team": "core"} and "hunter2" not in json.dumps(rest)  # masked
    assert "password" in rest  # a secret never gets a box of its own
    hints = [b["hint"]["text"] for b in view["blocks"]]
    assert hints[0] == "Text. Which <!channel> service"  # plain text: never a broadcast
    assert all(b["block_id"].startswith("arg:") for b in view["blocks"][:-1])


async def test_an_unchanged_form_approves_the_identical_call(bot: Bot) -> None:
    approval = await pending(bot)
    assert await bot.submit(await bot.open_edit(approval.id), {}) is None
    done = await bot.store.get_approval(approval.id)
    assert done.status is ApprovalStatus.APPROVED and done.digest == approval.digest
    assert isinstance(done.subject, ToolCallSubject) and done.subject.arguments == ARGUMENTS


async def test_boxes_change_the_call_and_bad_values_keep_the_form_open(bot: Bot) -> None:
    approval = await pending(bot)
    view = await bot.open_edit(approval.id)
    answer = await bot.submit(view, {"replicas": "2.5", "ratio (optional)": "NaN"})
    assert answer is not None and answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"arg:1", "arg:2"}
    answer = await bot.submit(view, {"replicas": "-1"})  # the schema's minimum, as for JSON
    assert answer is not None and "invalid at replicas" in answer["errors"]["field"]
    twice = json.dumps({"replicas": 9, "labels": {"team": "core"}})
    answer = await bot.submit(view, {"Other arguments (JSON)": twice})
    assert answer is not None and "replicas has its own box" in answer["errors"]["field"]
    assert (await bot.store.get_approval(approval.id)).status is ApprovalStatus.PENDING

    changes = {"replicas": "5", "dry_run (optional)": "true", "note (optional)": None}
    assert await bot.submit(view, changes) is None
    done = await bot.store.get_approval(approval.id)
    assert isinstance(done.subject, ToolCallSubject)
    assert done.subject.arguments == ARGUMENTS | {"replicas": 5, "dry_run": True, "note": ""}
    assert done.subject.arguments["password"] == "hunter2-secret-value"  # the mask kept it


async def test_a_form_opened_before_the_tool_changed_is_refused(bot: Bot) -> None:
    approval = await pending(bot)
    view = await bot.open_edit(approval.id)
    bot.schemas["scale"] = {"type": "object", "properties": {"replicas": {"type": "integer"}}}
    answer = await bot.submit(view, {"replicas": "0"})
    assert answer is not None and "changed since this form was opened" in answer["errors"]["field"]
    assert (await bot.store.get_approval(approval.id)).status is ApprovalStatus.PENDING


async def test_a_box_cannot_make_a_command_destructive_on_one_click(bot: Bot) -> None:
    """The form is only another way to write the arguments: an edited command is a new call
    whose risk is worked out again; rm -rf is asked anew at CRITICAL and approves nothing."""
    approval = await pending(bot, "run_command", {"command": "echo harmless"})
    view = await bot.open_edit(approval.id)
    assert boxes(view)["command"] == "echo harmless"
    assert await bot.submit(view, {"command": "rm -rf victim"}) is None
    old = await bot.store.get_approval(approval.id)
    # Closed, not approved: the run asks for the edited call again, at its own risk.
    assert old.status is ApprovalStatus.SUPERSEDED and old.consumed_at is None
    edit = old.decisions[-1]
    assert edit.edited_risk is RiskLevel.CRITICAL and edit.by == ALICE
    assert edit.edited_arguments == {"command": "rm -rf victim"}
