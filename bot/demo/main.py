"""`airlock demo`: the real bot, unchanged, against local stand-ins of Slack and Anthropic.

Everything runs in this process: the Slack Web API stand-in, the Anthropic stand-in answered
by a scripted model (:mod:`bot.demo.script`), and `airlock serve`'s own app, agent and web
server on a free port. The demo plays the people: it sends the bot signed requests built
from Slack's own payload samples, exactly as Slack would, and shows what the bot posts back
(:mod:`bot.demo.view`). The person at the keyboard answers the approval requests.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.prompt import Confirm, Prompt

from agent_core import Airlock, AirlockError, AuditKey, Settings, load_settings
from agent_core.testing import (
    AnthropicStandIn,
    SlackCall,
    SlackIdentity,
    SlackRequest,
    SlackRequestSigner,
    SlackStandIn,
    post_to_bot,
)
from agent_core.testing import load_json_payload as sample
from bot.demo.script import FIRST_GOAL, SECOND_GOAL, ScriptedModel, prepare_workspace
from bot.demo.view import (
    Button,
    Transcript,
    answer_thread,
    buttons,
    final_status,
    has_buttons,
)
from bot.slack.app import build_app, build_client
from bot.slack.blocks import APPROVE, EDIT, FIELD, REJECT, REJECT_WITH_REASON
from bot.slack.home import KILL
from bot.slack.pings import usergroup_members
from bot.slack.server import build_web_app, connect_slack

__all__ = ["BANNER", "run_demo"]

T = TypeVar("T")

BANNER = (
    "The model's replies are scripted (no API key needed); Slack is a local stand-in; "
    "everything between them is the real airlock."
)
STEP_TIMEOUT = 120.0  # the first step also loads the embedding model
_SECRET, _TOKEN, _KEY = "demo-signing-secret", "xoxb-demo", "sk-ant-demo"
_MENTION, _CLICK, _SUBMIT = (
    sample("app_mention.json"),
    sample("block_actions.json"),
    sample("view_submission.json"),
)
_BOT = SlackIdentity().bot_user_id
_ASKER = _MENTION["event"]["user"]
_YOU = _CLICK["user"]["id"]
_CHANNEL = _MENTION["event"]["channel"]
_RUN_ID = re.compile(r"run `(run_\w+)`")


class DemoFailed(AirlockError):
    """The bot did not answer as the scenario expects (a non-200, or nothing in time)."""


async def run_demo(*, auto: bool, console: Console) -> int:
    """Play the scenario: two goals in one channel, the second recalling what the first taught.

    With ``auto`` every request is approved without asking. Returns 0 once both goals ended.
    """
    console.rule("[bold]airlock demo")
    console.print(BANNER, style="bold yellow", markup=False)
    console.print(f"You are @you ({_YOU}), an approver and admin; @sam ({_ASKER}) asks the bot.",
                  markup=False)  # fmt: skip
    try:
        await _play(console, auto=auto)
    except EOFError:
        console.print("No more input to answer with; `airlock demo --auto` needs none.")
        return 1
    console.rule("what was real")
    console.print(
        "Real: the Slack app (signature checks, listeners), runner, planner, executor, approval "
        "gate, store, audit, memory (with the real embedding model) and tools. Scripted: the "
        "model's replies (bot/_demo_script.py). Stand-ins: Slack's Web API and Anthropic's API. "
        "Your clicks: signed requests built from Slack's own payload samples.",
        markup=False,
    )
    return 0


async def _play(console: Console, *, auto: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="airlock-demo-") as folder:
        async with AsyncExitStack() as stack:
            demo = await _Demo.start(stack, Path(folder), console=console, auto=auto)
            for number, goal in enumerate((FIRST_GOAL, SECOND_GOAL), start=1):
                console.rule(f"goal {number}")
                status = await demo.goal(goal, number)
                console.print(f"goal {number} ended: {status}", style="bold", markup=False)


class _Person(Protocol):
    """Whoever answers the approval requests."""

    async def choose(self, options: list[Button]) -> Button: ...
    async def confirm(self, question: str) -> bool: ...
    async def text(self, label: str, default: str) -> str: ...


@dataclass(kw_only=True)
class _Demo:
    """The running stage: stand-ins, the bot, and the people's side of the conversation."""

    console: Console
    slack: SlackStandIn
    airlock: Airlock
    url: str
    http: aiohttp.ClientSession
    transcript: Transcript
    person: _Person
    signer: SlackRequestSigner

    @classmethod
    async def start(cls, stack: AsyncExitStack, folder: Path, *, console: Console,
                    auto: bool) -> _Demo:  # fmt: skip
        """Start both stand-ins and the bot; everything stops when ``stack`` closes."""
        slack = await stack.enter_async_context(SlackStandIn(bot_token=_TOKEN))
        slack.workspace.add_user(_YOU, name="you")
        slack.workspace.add_user(_ASKER, name="sam")
        names = {_YOU: "you", _ASKER: "sam", _BOT: "airlock"}
        transcript = Transcript(console=console, slack=slack, names=names)
        model = ScriptedModel(
            narrate=lambda line: transcript.note("[scripted model]", line, style="magenta"),
            observed=lambda line: transcript.note("[airlock → model]", line, style="blue"),
        )
        anthropic = await stack.enter_async_context(
            AnthropicStandIn(api_key=_KEY, default=model.respond)
        )
        settings = _settings(slack, anthropic, folder)
        prepare_workspace(settings.effective_workspace_dir)
        airlock, url = await _serve(settings, stack)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        person: _Person = _Autopilot(console=console) if auto else _Keyboard(console=console)
        signer = SlackRequestSigner(_SECRET)
        return cls(console=console, slack=slack, airlock=airlock, url=url, http=http,
                   transcript=transcript, person=person, signer=signer)  # fmt: skip

    async def goal(self, text: str, number: int) -> str:
        """Sam mentions the bot with ``text``; answer its requests until the run ends."""
        ts = f"{int(time.time())}.{number:06d}"
        mention = copy.deepcopy(_MENTION)
        mention["event"].update(text=f"<@{_BOT}> {text}", ts=ts, event_ts=ts,
                                client_msg_id=f"demo-{number}")  # fmt: skip
        mention.update(event_id=f"EvDEMO{number}", event_time=int(time.time()))
        self.transcript.flush()
        self.transcript.note(f"#{_CHANNEL} sam:", f"@airlock {text}", style="bold")
        since = len(self.slack.calls)
        await self._post(self.signer.event(mention))
        while True:
            call = await self.slack.wait_for_call(
                ("chat.postMessage", "chat.stopStream"), lambda c: _in_thread(c, ts) and _turn(c),
                since=since, timeout=STEP_TIMEOUT,
            )  # fmt: skip
            at = _index(self.slack, call)
            self.transcript.flush(at + 1)
            status = final_status(call)
            if status is not None:
                await self._quiet()
                return status
            await self._decide(call)
            since = at + 1

    async def _decide(self, card: SlackCall) -> None:
        run_id = _run_id(card)
        options = [*buttons(card), Button(label="Kill run", action_id=KILL, value=run_id)]
        listing = "  ".join(f"{i}) {b.label}" for i, b in enumerate(options, start=1))
        self.console.print(f"    ┃ {listing}", style="bold cyan", markup=False)
        while True:
            pick = await self.person.choose(options)
            if pick.action_id != REJECT or await self.person.confirm(
                "Reject? The agent is told it may not do this."
            ):
                break
        self.transcript.note("▶ you click", pick.label, style="bold green")
        if pick.action_id in (REJECT_WITH_REASON, EDIT):
            await self._modal(card, pick)
        else:
            await self._click(card, pick)

    async def _modal(self, card: SlackCall, pick: Button) -> None:
        since = len(self.slack.calls)
        await self._click(card, pick)
        opened = await self.slack.wait_for_call("views.open", since=since, timeout=STEP_TIMEOUT)
        self.transcript.flush(_index(self.slack, opened) + 1)
        view = opened.response["view"]
        element = view["blocks"][0].get("element") or {}
        label = view["blocks"][0]["label"]["text"]
        while True:
            value = await self.person.text(label, element.get("initial_value", ""))
            self.transcript.note("▶ you submit", value.replace("\n", " "), style="bold green")
            _, answer = await self._post(self.signer.interaction(_submission(view, value)))
            errors = json.loads(answer).get("errors") if answer.startswith("{") else None
            if not errors:
                return
            self.transcript.flush()
            self.console.print(f"  │ the modal stays open: {errors[FIELD]}", style="red",
                               markup=False)  # fmt: skip

    async def _click(self, card: SlackCall, pick: Button) -> None:
        click = copy.deepcopy(_CLICK)
        if pick.action_id == KILL:  # App Home's Kill button: a view, not a message
            click["container"] = {"type": "view", "view_id": "VDEMOHOME"}
        else:
            click["container"] = {"type": "message", "message_ts": card.response["ts"],
                                  "channel_id": card.args["channel"], "is_ephemeral": False,
                                  "thread_ts": card.args.get("thread_ts")}  # fmt: skip
        click["trigger_id"] = f"{time.time_ns()}.demo"
        click["actions"][0].update(action_id=pick.action_id, value=pick.value,
                                   text={"type": "plain_text", "text": pick.label},
                                   action_ts=f"{time.time():.6f}")  # fmt: skip
        await self._post(self.signer.interaction(click))

    async def _post(self, request: SlackRequest) -> tuple[int, str]:
        status, body = await post_to_bot(self.url, request, session=self.http, timeout=30)
        if status != 200:
            raise DemoFailed(f"the bot answered HTTP {status}: {body[:200]}")
        return status, body

    async def _quiet(self) -> None:
        """Let the finished run's last work (what it remembers) end before the next goal."""
        working = self.airlock.working()
        if working:
            await asyncio.wait(working, timeout=STEP_TIMEOUT)
        self.transcript.flush()


def _settings(slack: SlackStandIn, anthropic: AnthropicStandIn, folder: Path) -> Settings:
    """Everything the demo needs, given explicitly: nothing from .env or the shell matters."""
    return load_settings(
        None,
        slack_bot_token=_TOKEN, slack_signing_secret=_SECRET, slack_app_token=None,
        slack_api_url=slack.api_url, anthropic_api_key=_KEY,
        anthropic_base_url=anthropic.base_url, llm_max_retries=0, data_dir=folder / "data",
        store_url=None, workspace_dir=None, mcp_config=None, approval_channel=None,
        approvers=[_YOU], admins=[_YOU], escalation_chain=[], tool_risks={},
        memory_enabled=True, memory_extract=True, otel_exporter_otlp_endpoint=None,
        # The demo's store is thrown away with its folder, so its audit key is too.
        audit_key=AuditKey.generate(),
    )  # fmt: skip


async def _serve(settings: Settings, stack: AsyncExitStack) -> tuple[Airlock, str]:
    """`airlock serve`'s start-up, on 127.0.0.1 and a free port, without its signal handling."""
    client = build_client(settings)
    airlock = await stack.enter_async_context(
        Airlock.from_settings(settings, groups=usergroup_members(client))
    )
    app = build_app(settings, client=client)
    intake = await connect_slack(airlock, app, client)
    site = web.AppRunner(build_web_app(settings, app, airlock.store))
    await site.setup()
    stack.push_async_callback(site.cleanup)
    await web.TCPSite(site, "127.0.0.1", 0).start()
    await airlock.start_runs()  # the demo's store is SQLite: runs work in this process
    stack.push_async_callback(airlock.stop_runs)
    stack.push_async_callback(intake.close)  # goals taken become runs before the runs stop
    port = site.addresses[0][1]
    return airlock, f"http://127.0.0.1:{port}/slack/events"


def _submission(view: dict[str, Any], value: str) -> dict[str, Any]:
    """What Slack sends when the modal ``view`` is submitted with ``value`` typed in."""
    payload = copy.deepcopy(_SUBMIT)
    payload["trigger_id"] = f"{time.time_ns()}.demo"
    payload["view"].update(
        id=view["id"], callback_id=view["callback_id"], blocks=view["blocks"],
        private_metadata=view["private_metadata"], hash=view["hash"],
        root_view_id=view["root_view_id"],
        state={"values": {FIELD: {FIELD: {"type": "plain_text_input", "value": value}}}},
    )  # fmt: skip
    return payload


def _in_thread(call: SlackCall, ts: str) -> bool:
    return ts in (call.args.get("thread_ts"), answer_thread(call))


def _turn(call: SlackCall) -> bool:
    """A message the people must answer (a request) or the run's end."""
    return has_buttons(call) or final_status(call) is not None


def _index(slack: SlackStandIn, call: SlackCall) -> int:
    return next(i for i, seen in enumerate(slack.calls) if seen is call)


def _run_id(card: SlackCall) -> str:
    found = _RUN_ID.search(json.dumps(card.args.get("blocks")))
    if found is None:
        raise DemoFailed("an approval request without its run id")
    return found.group(1)


@dataclass(kw_only=True)
class _Autopilot:
    """`--auto`: approves every request, with no input."""

    console: Console

    async def choose(self, options: list[Button]) -> Button:
        number, pick = next((i, b) for i, b in enumerate(options, 1) if b.action_id == APPROVE)
        self.console.print(f"    (--auto chooses {number}) {pick.label})", style="dim",
                           markup=False)  # fmt: skip
        return pick

    async def confirm(self, question: str) -> bool:
        return True

    async def text(self, label: str, default: str) -> str:
        return default


@dataclass(kw_only=True)
class _Keyboard:
    """The person at the keyboard, asked with rich prompts."""

    console: Console

    async def choose(self, options: list[Button]) -> Button:
        numbers = [str(i) for i in range(1, len(options) + 1)]
        answer = await _ask(lambda: Prompt.ask("    your choice", choices=numbers, default="1",
                                               console=self.console))  # fmt: skip
        return options[int(answer) - 1]

    async def confirm(self, question: str) -> bool:
        return await _ask(lambda: Confirm.ask(f"    {question}", console=self.console))

    async def text(self, label: str, default: str) -> str:
        if not default:
            return await _ask(lambda: Prompt.ask(f"  │ {label}", console=self.console))
        self.console.print("  │ (one line; Enter keeps it as shown)", style="dim")
        flat = json.dumps(json.loads(default)) if default.startswith("{") else default
        return await _ask(lambda: Prompt.ask(f"  │ {label}", default=flat, console=self.console))


async def _ask(prompt: Callable[[], T]) -> T:
    """Run a blocking prompt in a daemon thread, so Ctrl-C ends the demo without an Enter."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not answer.done():
            outcome()

    def read() -> None:
        try:
            value = prompt()
        except Exception as error:  # EOF on stdin, for one: the awaiting side raises it
            loop.call_soon_threadsafe(settle, partial(answer.set_exception, error))
        else:
            loop.call_soon_threadsafe(settle, partial(answer.set_result, value))

    threading.Thread(target=read, name="airlock-demo-prompt", daemon=True).start()
    return await answer
