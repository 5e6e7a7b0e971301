"""manifest.yml asks Slack for exactly the bot scopes the code needs, worked out from the code.

Every Web API call in ``bot/`` and ``agent_core/`` (``client.<method>(...)``, through
slack_sdk's own method table, and ``client.api_call("method")``), every event listened to and
every slash command is found by reading the source; each is mapped to the scopes Slack's
documentation gives it, and the union must EQUAL the manifest's bot scopes. A call to a method
missing from the table fails the test, so no new call slips in unmapped.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient

REPO = Path(__file__).resolve().parents[2]
SOURCES = (REPO / "bot", REPO / "agent_core")
NOT_THE_BOT = (REPO / "agent_core" / "testing",)
"""The Slack and Anthropic stand-ins: they answer calls, they make none with the bot token."""

# Bot-token scopes of each Web API method, from its page at
# https://docs.slack.dev/reference/methods/<method>. An empty set: "No scopes required".
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.delete": frozenset({"chat:write"}),
    "chat.getPermalink": frozenset(),
    # Accepts chat:write since 2026-03 and will accept only chat:write (Slack changelog
    # "Set status method scope update"), so assistant:write is not asked for.
    "assistant.threads.setStatus": frozenset({"chat:write"}),
    "assistant.threads.setSuggestedPrompts": frozenset({"assistant:write"}),
    # Streaming an answer: chat:write, like any message.
    "chat.startStream": frozenset({"chat:write"}),
    "chat.appendStream": frozenset({"chat:write"}),
    "chat.stopStream": frozenset({"chat:write"}),
    "usergroups.users.list": frozenset({"usergroups:read"}),
    # files_upload_v2 is these two calls (and a POST to the URL the first returns).
    "files.getUploadURLExternal": frozenset({"files:write"}),
    "files.completeUploadExternal": frozenset({"files:write"}),
    # Views are opened with an interaction's trigger_id or published to App Home: no scope.
    "views.open": frozenset(),
    "views.update": frozenset(),
    "views.push": frozenset(),
    "views.publish": frozenset(),
    "auth.test": frozenset(),
}

# Bot scopes of each event subscription, from https://docs.slack.dev/reference/events/<event>.
EVENT_SCOPES: dict[str, frozenset[str]] = {
    "app_mention": frozenset({"app_mentions:read"}),
    "app_home_opened": frozenset(),
    "assistant_thread_started": frozenset({"assistant:write"}),
    "assistant_thread_context_changed": frozenset({"assistant:write"}),
    "message.channels": frozenset({"channels:history"}),
    "message.groups": frozenset({"groups:history"}),
    "message.im": frozenset({"im:history"}),
    "message.mpim": frozenset({"mpim:history"}),
}

BOLT_CONTEXT_CALLS = {
    "say": "chat.postMessage",
    "set_suggested_prompts": "assistant.threads.setSuggestedPrompts",
    "set_status": "assistant.threads.setStatus",
}
"""Bolt's listener arguments that call the Web API, by the name listeners give them."""
ASSISTANT_EVENTS = {
    "thread_started": "assistant_thread_started",
    "thread_context_changed": "assistant_thread_context_changed",
    "user_message": "message",
}
"""``AsyncAssistant.<listener>(...)``: the event each listens to."""

COMMANDS_SCOPE = "commands"
"""What a slash command needs (https://docs.slack.dev/reference/scopes/commands)."""


@dataclass(kw_only=True)
class Uses:
    """What the source asks of Slack: Web API methods (with where), events, slash commands."""

    methods: dict[str, list[str]] = field(default_factory=dict)
    events: set[str] = field(default_factory=set)
    commands: set[str] = field(default_factory=set)

    def method(self, name: str, where: str) -> None:
        self.methods.setdefault(name, []).append(where)


@cache
def client_methods() -> dict[str, frozenset[str]]:
    """slack_sdk's method name -> the Web API methods it calls (files_upload_v2 calls two)."""
    names = {
        name
        for name, member in inspect.getmembers(AsyncWebClient, inspect.iscoroutinefunction)
        if not name.startswith("_") and name != "api_call"
    }
    return {name: _api_methods(name, names, frozenset()) for name in names}


def _api_methods(name: str, names: set[str], seen: frozenset[str]) -> frozenset[str]:
    source = inspect.getsource(getattr(AsyncWebClient, name))
    found = set(re.findall(r"api_call\(\s*[\"']([\w.]+)[\"']", source))
    for callee in set(re.findall(r"self\.(\w+)\(", source)) & names - seen - {name}:
        found |= _api_methods(callee, names, seen | {name})
    return frozenset(found)


def python_files() -> Iterator[Path]:
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            if not any(path.is_relative_to(skip) for skip in NOT_THE_BOT):
                yield path


def scan(source: str, where: str, uses: Uses) -> None:
    """Add to ``uses`` what ``source`` calls and listens to."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            _scan_call(node, f"{where}:{node.lineno}", uses)


def _scan_call(call: ast.Call, where: str, uses: Uses) -> None:
    func = call.func
    first = call.args[0] if call.args else None
    literal = first.value if isinstance(first, ast.Constant) else None
    if isinstance(func, ast.Name) and func.id in BOLT_CONTEXT_CALLS:  # Bolt's say() and kin
        uses.method(BOLT_CONTEXT_CALLS[func.id], where)
    if not isinstance(func, ast.Attribute):
        return
    if func.attr in client_methods():
        for method in client_methods()[func.attr] or {f"<{func.attr}: no api_call found>"}:
            uses.method(method, where)
    elif func.attr == "api_call":
        uses.method(literal if isinstance(literal, str) else f"<dynamic api_call at {where}>",
                    where)  # fmt: skip
    elif func.attr == "event" and isinstance(literal, str):
        uses.events.add(literal)
    elif func.attr in ASSISTANT_EVENTS and isinstance(first, ast.Name):
        uses.events.add(ASSISTANT_EVENTS[func.attr])
    elif func.attr == "command" and isinstance(literal, str) and literal.startswith("/"):
        uses.commands.add(literal)


@cache
def code_uses() -> Uses:
    uses = Uses()
    for path in python_files():
        scan(path.read_text(), str(path.relative_to(REPO)), uses)
    return uses


def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "manifest.yml").read_text())
    return loaded


def subscribed_events() -> set[str]:
    return set(manifest()["settings"]["event_subscriptions"]["bot_events"])


def required_scopes(uses: Uses, events: set[str]) -> set[str]:
    """The scopes ``uses`` and the subscribed ``events`` need; AssertionError for unmapped ones."""
    unmapped = {m: w for m, w in uses.methods.items() if m not in METHOD_SCOPES}
    assert not unmapped, (
        f"Web API methods with no scope in METHOD_SCOPES (look each up in Slack's docs): {unmapped}"
    )
    unknown = events - EVENT_SCOPES.keys()
    assert not unknown, f"events with no scope in EVENT_SCOPES: {sorted(unknown)}"
    needed = {scope for method in uses.methods for scope in METHOD_SCOPES[method]}
    needed |= {scope for event in events for scope in EVENT_SCOPES[event]}
    return needed | ({COMMANDS_SCOPE} if uses.commands else set())


def test_the_manifest_asks_for_exactly_the_scopes_the_code_needs() -> None:
    scopes = manifest()["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "airlock acts with its bot token only: no user scopes"
    asked = set(scopes["bot"])
    needed = required_scopes(code_uses(), subscribed_events())
    assert asked == needed, (
        f"manifest.yml asks for {sorted(asked - needed)} that nothing uses, "
        f"and lacks {sorted(needed - asked)}"
    )
    assert len(scopes["bot"]) == len(asked), "a scope is listed twice"


def test_every_event_subscribed_is_listened_to_and_every_listener_is_subscribed() -> None:
    listened = code_uses().events
    subscribed = subscribed_events()
    # Bolt's "message" listener hears every message.* subscription.
    as_listened = {"message" if e.startswith("message.") else e for e in subscribed}
    assert as_listened == listened, f"subscribed {sorted(subscribed)}, listened {sorted(listened)}"


def test_the_slash_commands_are_the_ones_the_code_answers() -> None:
    declared = {c["command"] for c in manifest()["features"]["slash_commands"]}
    assert declared == code_uses().commands == {"/agent"}


def test_the_scan_finds_the_calls_the_bot_is_known_to_make() -> None:
    # Guards the scanner itself: were it blind, the equality above would hold vacuously.
    found = code_uses().methods
    for method in ("chat.postMessage", "chat.update", "usergroups.users.list",
                   "files.getUploadURLExternal", "files.completeUploadExternal"):  # fmt: skip
        assert method in found, method
    assert {"app_mention", "message", "app_home_opened"} <= code_uses().events


def test_files_upload_v2_is_resolved_to_the_calls_it_makes() -> None:
    assert client_methods()["files_upload_v2"] == {
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    }
    assert client_methods()["chat_postMessage"] == {"chat.postMessage"}


@pytest.mark.parametrize(
    "call",
    [
        "await client.reactions_add(channel='C1', name='eyes', timestamp='1.2')",
        "await self.client.api_call('pins.add', json={})",
        "await client.api_call(method)",
    ],
)
def test_a_call_with_no_known_scope_fails_the_check(call: str) -> None:
    uses = Uses()
    scan(textwrap.dedent(f"async def f(client, self, method):\n    {call}\n"), "new.py", uses)
    assert uses.methods, "the scan missed the call"
    with pytest.raises(AssertionError, match="no scope in METHOD_SCOPES"):
        required_scopes(uses, set())


def test_a_scope_nothing_needs_is_reported() -> None:
    uses = Uses()
    scan("async def f(client):\n    await client.chat_postMessage(channel='C', text='t')\n",
         "bot.py", uses)  # fmt: skip
    needed = required_scopes(uses, {"message.im"})
    assert needed == {"chat:write", "im:history"}
    assert {"chat:write", "im:history", "users:read"} != needed
