"""The scripted half of `airlock demo`: the model's replies, and the files its tools touch.

The Anthropic stand-in answers every request with :meth:`ScriptedModel.respond`, a function
of the request it received, not a fixed queue. So whatever the person at the keyboard
decides (approve, edit, reject, kill), the next reply fits: a rejected call comes back as an
error result and the script says it did not restart anything; a killed run asks nothing more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_core.testing import (
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)

__all__ = ["FIRST_GOAL", "PROCEDURE", "SECOND_GOAL", "ScriptedModel", "prepare_workspace"]

FIRST_GOAL = "check the staging web tier and restart it"
SECOND_GOAL = "how do we restart the staging web tier?"
STATUS_FILE = "staging/web-tier.txt"
RESTART = "./restart-staging.sh web"
PROCEDURE = (
    "Staging web restarts go through ./restart-staging.sh web, run from the ops workspace; "
    "it restarts one instance at a time."
)

_STATUS = """staging web tier (3 instances)
web-1  healthy    uptime 6d
web-2  UNHEALTHY  failing /healthz for 12 min
web-3  healthy    uptime 6d
"""
_SCRIPT = """#!/bin/sh
# A stand-in restart script written by `airlock demo`: it only prints.
for host in web-1 web-2 web-3; do echo "restarting $host ... ok"; done
echo "staging web tier: 3 of 3 healthy"
"""
_MEMORY = re.compile(r"<memory[^>]*>\n[^\n]*\n(.*?)\n</memory>", re.DOTALL)
_FENCE = re.compile(r"</?tool_output[^>]*>")
_SUBTASK = re.compile(r"Your subtask \((\w+)\)")


def prepare_workspace(workspace: Path) -> None:
    """The files the scripted run reads and runs: a status report and a harmless script."""
    (workspace / "staging").mkdir(parents=True, exist_ok=True)
    (workspace / STATUS_FILE).write_text(_STATUS)
    script = workspace / "restart-staging.sh"
    script.write_text(_SCRIPT)
    script.chmod(0o755)


@dataclass(kw_only=True)
class ScriptedModel:
    """Plays the model: plans, tool calls and answers, each chosen from the request."""

    narrate: Callable[[str], None]
    """Told each scripted reply in a line, so the terminal can show what was scripted."""
    observed: Callable[[str], None]
    """Told what airlock sent the model worth showing: tool results, recalled memories."""

    def respond(self, request: RecordedRequest) -> Reply:
        """The reply to one Messages API request."""
        body = request.body or {}
        if (body.get("tool_choice") or {}).get("name") == "submit_plan":
            return self._plan(_first_user_text(request))
        if '"lessons"' in _system_text(body):
            # Fact extraction after a step: the remember tool already kept what matters.
            return text_reply(json.dumps({"facts": {}, "lessons": []}))
        for result in request.tool_results():
            lines = _FENCE.sub("", _result_text(result)).strip().splitlines()
            self.observed("\n    ".join(["tool result:", *lines]))
        brief = _first_user_text(request)
        subtask = _SUBTASK.search(brief)
        step = subtask.group(1) if subtask else ""
        if SECOND_GOAL in brief:
            return self._answer(brief)
        return self._lookup(request) if step == "s1" else self._restart(request)

    def _plan(self, prompt: str) -> Reply:
        recalled = _notes(prompt)
        if recalled:
            self.observed("memories recalled into the planner's prompt:")
        for note in recalled:
            self.observed(f"  - {note}")
        if SECOND_GOAL in prompt:
            steps = [_subtask("s1", "Answer from what this channel remembers", [], "low")]
        else:
            steps = [
                _subtask("s1", "Read the staging web tier's status", ["read_file"], "low"),
                _subtask("s2", "Restart the staging web tier", ["run_command"], "high", ["s1"]),
            ]
        listed = "; ".join(f"{s['id']} {s['description']} ({s['risk_level']})" for s in steps)
        self.narrate(f"plans: {listed}")
        return tool_use_reply("submit_plan", {"subtasks": steps})

    def _lookup(self, request: RecordedRequest) -> Reply:
        if not request.tool_results():
            self.narrate(f"calls read_file {STATUS_FILE}")
            return tool_use_reply("read_file", {"path": STATUS_FILE})
        return self._say("web-2 has failed its health check for 12 minutes; web-1 and web-3 "
                         "are healthy. A restart should clear it.")  # fmt: skip

    def _restart(self, request: RecordedRequest) -> Reply:
        results = request.tool_results()
        last_tool = _last_tool_use(request)
        if not results:
            self.narrate(f"calls run_command {RESTART!r}")
            return tool_use_reply("run_command", {"command": RESTART})
        if results[-1].get("is_error"):
            why = _result_text(results[-1])[:300]
            return self._say(f"I did not restart the staging web tier. What airlock said: {why}")
        if last_tool == "run_command":
            self.narrate("calls remember (how staging restarts are done)")
            return tool_use_reply(
                "remember", {"content": PROCEDURE, "kind": "procedural", "importance": 0.8}
            )
        return self._say("Restarted the staging web tier: 3 of 3 instances healthy. "
                         "I noted how staging restarts are done, for next time.")  # fmt: skip

    def _answer(self, brief: str) -> Reply:
        known = [n for n in _notes(brief) if ", procedural," in n and "restart-staging.sh" in n]
        if known:
            return self._say(f"From this channel's memory: {known[0].split('] ', 1)[-1]}")
        return self._say("Nothing this channel remembers says how; ask the platform team.")

    def _say(self, text: str) -> Reply:
        self.narrate(f"answers: {text}")
        return text_reply(text)


def _subtask(
    sid: str, description: str, tools: list[str], risk: str, after: list[str] | None = None
) -> dict[str, Any]:
    return {"id": sid, "description": description, "required_tools": tools,
            "depends_on": after or [], "risk_level": risk}  # fmt: skip


def _notes(prompt: str) -> list[str]:
    """The notes of a prompt's <memory> block, a multi-line note joined into one line."""
    found = _MEMORY.search(prompt)
    if found is None:
        return []
    return [n.replace("\n", " / ") for n in ("\n" + found.group(1)).split("\n- ")[1:]]


def _system_text(body: dict[str, Any]) -> str:
    system = body.get("system")
    if isinstance(system, list):
        return "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    return str(system or "")


def _first_user_text(request: RecordedRequest) -> str:
    first = next((m for m in request.messages if m.get("role") == "user"), None)
    content = (first or {}).get("content")
    if isinstance(content, str):
        return content
    return "\n".join(str(b.get("text", "")) for b in content or [] if isinstance(b, dict))


def _last_tool_use(request: RecordedRequest) -> str | None:
    names = [
        block.get("name")
        for message in request.messages
        if message.get("role") == "assistant" and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use"
    ]
    return str(names[-1]) if names else None


def _result_text(result: dict[str, Any]) -> str:
    content = result.get("content")
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content or "")
