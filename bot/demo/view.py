"""How `airlock demo` shows Slack in the terminal: what the Slack stand-in received from the
bot, rendered as a person in the channel would see it, with the demo's own notes in between.

Nothing is printed as rich markup (``markup=False``); hidden characters are shown as
``⟨U+…⟩``, and the bot's own cut markers (``… 2,214 more characters``) come through as sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rich.console import Console

from agent_core.testing import SlackCall, SlackStandIn
from bot.slack.render import BACKTICK, visible

__all__ = ["Button", "Transcript", "answer_text", "answer_thread", "buttons", "final_status",
           "has_buttons"]  # fmt: skip

_FINAL = re.compile(r"^:(?:tada|no_entry): \*\*(\w+)\*\*")
_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_USER = re.compile(r"<@([A-Z0-9]+)>")
_THREAD = "    │ "
# Slack's names for the risk badges; rich knows other emoji codes but not these.
_EMOJI = {":large_green_circle:": "🟢", ":large_yellow_circle:": "🟡",
          ":large_orange_circle:": "🟠", ":red_circle:": "🔴"}  # fmt: skip


class Button(NamedTuple):
    """One button of a message, as the person can press it."""

    label: str
    action_id: str
    value: str


def has_buttons(call: SlackCall) -> bool:
    """A message with buttons: an approval request."""
    return any(block.get("type") == "actions" for block in _blocks(call))


def final_status(call: SlackCall) -> str | None:
    """The run status an answer announces (a stream stopped), else None."""
    found = _FINAL.match(answer_text(call) or "")
    return found.group(1) if found else None


def answer_text(call: SlackCall) -> str | None:
    """The whole of a streamed answer, if ``call`` stopped one."""
    if call.method != "chat.stopStream" or not call.response.get("ok"):
        return None
    return str(call.response["message"]["text"])


def answer_thread(call: SlackCall) -> str | None:
    """The thread a stopped stream's answer is in."""
    return call.response["message"].get("thread_ts") if answer_text(call) is not None else None


def buttons(call: SlackCall) -> list[Button]:
    """The buttons of a message, in order."""
    return [
        Button(label=_text(e.get("text")), action_id=e["action_id"], value=e.get("value", ""))
        for block in _blocks(call)
        if block.get("type") == "actions"
        for e in block.get("elements", [])
    ]


@dataclass(kw_only=True)
class Transcript:
    """Prints the Slack calls in order, with the demo's notes where they happened."""

    console: Console
    slack: SlackStandIn
    names: dict[str, str]
    """Display names by user id, for mentions."""
    printed: int = 0
    _notes: list[tuple[int, str, str]] = field(default_factory=list)

    def note(self, label: str, text: str, *, style: str = "") -> None:
        """A line of the demo's own (a scripted reply, a click), placed at this moment."""
        self._notes.append((len(self.slack.calls), f"{label} {text}", style))

    def flush(self, upto: int | None = None) -> None:
        """Print every call not yet printed (up to index ``upto``), notes interleaved."""
        end = len(self.slack.calls) if upto is None else upto
        while self.printed < end:
            self._print_notes(self.printed)
            self._print(self.slack.calls[self.printed])
            self.printed += 1
        self._print_notes(end)

    def _print_notes(self, position: int) -> None:
        while self._notes and self._notes[0][0] <= position:
            _, text, style = self._notes.pop(0)
            self.console.print(visible(text), style=style, markup=False)

    def _print(self, call: SlackCall) -> None:
        args = call.args
        if call.method == "chat.postMessage":
            where = _THREAD if args.get("thread_ts") else f"#{args.get('channel')} "
            if has_buttons(call):
                self._card(call, where)
            else:
                self._lines(where, f"airlock: {args.get('text', '')}")
        elif call.method == "chat.update":
            if _blocks(call):
                self._card(call, _THREAD, edited=True)
            else:
                self._lines(_THREAD, f"airlock (edited in place): {args.get('text', '')}")
        elif call.method == "chat.stopStream" and answer_text(call) is not None:
            self._lines(_THREAD, f"airlock (streamed, in Markdown): {answer_text(call)}")
        elif call.method == "chat.postEphemeral":
            self._lines(_THREAD, f"airlock (only you can see this): {args.get('text', '')}")
        elif call.method == "views.open":
            self._modal(args.get("view") or {})

    def _card(self, call: SlackCall, where: str, *, edited: bool = False) -> None:
        self._lines(where, "airlock (request edited in place):" if edited else "airlock:")
        for block in _blocks(call):
            kind = block.get("type")
            if kind == "header":
                self._lines(where + "┃ ", _text(block.get("text")), style="bold")
            elif kind == "section":
                self._lines(where + "┃ ", _text(block.get("text")))
            elif kind == "context":
                for element in block.get("elements", []):
                    self._lines(where + "┃ ", _text(element), style="dim")
            elif kind == "actions":
                labels = [f"[{b.label}]" for b in buttons(call)]
                self._lines(where + "┃ ", "  ".join(labels), style="bold cyan")

    def _modal(self, view: dict[str, Any]) -> None:
        self._lines("", f"  ┌ modal: {_text(view.get('title'))}", style="bold")
        for block in view.get("blocks", []):
            self._lines("  │ ", _text(block.get("label")))
            initial = (block.get("element") or {}).get("initial_value")
            if initial:
                self._lines("  │   ", initial, style="dim")
        self._lines("", f"  └ [{_text(view.get('submit'))}]  [{_text(view.get('close'))}]")

    def _lines(self, prefix: str, text: str, *, style: str = "") -> None:
        for line in self._plain(text).replace("```", "").split("\n"):
            self.console.print(prefix + line, style=style, markup=False)

    def _plain(self, text: str) -> str:
        """Slack's markup made readable: names for mentions, dates, escaped characters."""
        text = _DATE.sub(r"\1", text)
        for code, emoji in _EMOJI.items():
            text = text.replace(code, emoji)
        text = _USER.sub(lambda m: "@" + self.names.get(m.group(1), m.group(1)), text)
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        return visible(text.replace(BACKTICK, "`"))


def _blocks(call: SlackCall) -> list[dict[str, Any]]:
    found = call.args.get("blocks")
    return [b for b in found if isinstance(b, dict)] if isinstance(found, list) else []


def _text(obj: object) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return "" if obj is None else str(obj)
