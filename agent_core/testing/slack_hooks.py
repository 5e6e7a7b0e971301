"""Response URLs: where an app answers a slash command (or a click) without the Web API.

Slack puts a ``response_url`` (``https://hooks.slack.com/commands/T…/…/…``) in every slash
command payload. The app POSTs a message to it as JSON, no token: ``text`` and/or ``blocks``,
``response_type`` ``ephemeral`` (the default: only the person who typed the command sees it)
or ``in_channel``, and ``replace_original`` / ``delete_original`` for the earlier answer. It
works in channels the bot is not a member of, at most 5 times and for 30 minutes.

:class:`ResponseUrls` mints such URLs on the stand-in and answers POSTs to them as Slack's
hooks do: HTTP 200 and the body ``ok``, or an HTTP error status with a plain error string
(``invalid_payload``, ``no_text``, ``invalid_blocks``, ``used_url``, ``expired_url``, ...).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent_core.testing.slack_limits import message_error
from agent_core.testing.slack_workspace import JsonDict, SlackWorkspace

__all__ = ["MAX_USES", "RESPONSE_TYPES", "TTL_SECONDS", "Hook", "ResponseUrls"]

MAX_USES = 5
"""Answers one response_url takes ("up to 5 times within 30 minutes")."""
TTL_SECONDS = 30 * 60.0
"""How long a response_url is good for."""
RESPONSE_TYPES = frozenset({"ephemeral", "in_channel"})
_MESSAGE_KEYS = ("text", "blocks", "attachments")


@dataclass(kw_only=True)
class Hook:
    """One minted response_url: who typed the command, where, and what it answered."""

    user: str
    channel: str
    minted_at: float
    uses: int = 0
    answers: list[JsonDict] = field(default_factory=list)
    """Ephemeral answers sent through it that are still shown (replace/delete act on the last)."""


class ResponseUrls:
    """The response_urls a stand-in handed out, and what was posted to them."""

    def __init__(self, workspace: SlackWorkspace, clock: Callable[[], float]) -> None:
        self._workspace = workspace
        self._clock = clock
        self._hooks: dict[str, Hook] = {}

    def mint(self, base: str, *, user: str, channel: str) -> str:
        """A new response_url under ``base`` for a command ``user`` typed in ``channel``."""
        team = self._workspace.identity.team_id
        key = f"{team}/{len(self._hooks) + 1}/{secrets.token_urlsafe(12)}"
        self._hooks[key] = Hook(user=user, channel=channel, minted_at=self._clock())
        return f"{base}/commands/{key}"

    def answer(self, key: str, raw: bytes, content_type: str) -> tuple[int, str, JsonDict]:
        """HTTP status, body text and the parsed message for a POST to the hook ``key``."""
        hook = self._hooks.get(key)
        if hook is None:
            return 404, "no_service", {}
        try:
            body = json.loads(raw) if content_type == "application/json" else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return 400, "invalid_payload", {}
        status, error = self._refusal(hook, body)
        if error is not None:
            return status, error, body
        hook.uses += 1
        self._apply(hook, body)
        return 200, "ok", body

    def _refusal(self, hook: Hook, body: JsonDict) -> tuple[int, str | None]:
        if self._clock() - hook.minted_at > TTL_SECONDS:
            return 404, "expired_url"
        if hook.uses >= MAX_USES:
            return 404, "used_url"
        if body.get("response_type", "ephemeral") not in RESPONSE_TYPES:
            return 400, "invalid_payload"
        if not body.get("delete_original") and not any(body.get(k) for k in _MESSAGE_KEYS):
            return 400, "no_text"
        refused = message_error(body)
        if refused is not None:
            return 400, str(refused["error"])
        return 200, None

    def _apply(self, hook: Hook, body: JsonDict) -> None:
        """What people would now see: an ephemeral answer, a message in the channel, or the
        earlier answer replaced or deleted."""
        shown = self._workspace.ephemerals
        if body.get("delete_original") or body.get("replace_original"):
            if hook.answers:
                earlier = hook.answers.pop()
                shown[:] = [m for m in shown if m is not earlier]
            if body.get("delete_original"):
                return
        if body.get("response_type") == "in_channel":
            self._workspace.add_message(channel=hook.channel, text=str(body.get("text", "")),
                                        user=self._workspace.identity.bot_user_id)  # fmt: skip
            return
        message: dict[str, Any] = {
            "type": "message", "user": hook.user, "channel": hook.channel,
            "text": body.get("text", ""), "blocks": body.get("blocks") or [],
            "response_url": True,
        }  # fmt: skip
        shown.append(message)
        hook.answers.append(message)
