"""The in-memory Slack workspace behind the stand-in, and its Web API methods.

:class:`SlackWorkspace` keeps a small workspace (users, usergroups, messages,
threads, views, reactions) and answers the methods airlock uses with the JSON
body Slack would send. :mod:`agent_core.testing.slack_server` serves it over HTTP.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_core.testing.slack_limits import MARKDOWN_TEXT, message_error, view_error

__all__ = ["SlackIdentity", "SlackWorkspace"]

JsonDict = dict[str, Any]
_RESPONSE_VIEW_KEYS = ("title", "submit", "close", "external_id")


class _SlackError(Exception):
    """An ``ok: false`` answer, raised from inside a method handler."""

    def __init__(self, error: str, **fields: Any) -> None:
        super().__init__(error)
        self.body: JsonDict = {"ok": False, "error": error, **fields}


@dataclass(kw_only=True, frozen=True)
class SlackIdentity:
    """Who the bot is in the stand-in workspace (what ``auth.test`` answers).

    The defaults are the ids of bolt-python's own mock server; no human in the
    recorded payload samples has them, so Bolt's self-event filter stays correct.
    """

    team_id: str = "T0G9PQBBK"
    """Workspace id."""
    team_name: str = "Airlock Test"
    """Workspace name."""
    team_domain: str = "airlock-test"
    """Subdomain used in ``url`` and permalinks."""
    bot_user_id: str = "W23456789"
    """The bot's user id (``auth.test`` ``user_id``)."""
    bot_id: str = "BZYBOTHED"
    """The bot id (``auth.test`` ``bot_id``)."""
    app_id: str = "A0AIRLOCK"
    """The app id stamped on bot messages and views."""
    bot_name: str = "airlock"
    """The bot user's name (``auth.test`` ``user``)."""


class SlackWorkspace:
    """The in-memory workspace behind the stand-in, and the method handlers.

    ``channels`` (if given) are the only channels that exist, otherwise any
    channel id can be posted to; ``not_in_channels`` exist but the bot is not a
    member. Posting to a user id lands in the DM channel ``D`` + the id's tail.
    """

    def __init__(
        self,
        *,
        identity: SlackIdentity | None = None,
        users: Mapping[str, Mapping[str, Any]] | None = None,
        usergroups: Mapping[str, Iterable[str]] | None = None,
        channels: Iterable[str] | None = None,
        not_in_channels: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity or SlackIdentity()
        self.users: dict[str, JsonDict] = {}
        """User directory served by ``users.info``; add with :meth:`add_user`."""
        self.usergroups = {k: list(v) for k, v in (usergroups or {}).items()}
        """Usergroup id -> member user ids, served by ``usergroups.users.list``."""
        self.channels = None if channels is None else set(channels)
        self.not_in_channels = set(not_in_channels)
        self.views: dict[str, JsonDict] = {}
        """Views opened, updated or published, by view id."""
        self.reactions: set[tuple[str, str, str]] = set()
        """Reactions the bot added, as (channel, ts, name)."""
        self.ephemerals: list[JsonDict] = []
        """Ephemeral messages posted; they never appear in history."""
        self.statuses: dict[tuple[str, str], str] = {}
        """Assistant thread status by (channel_id, thread_ts)."""
        self.status_history: list[tuple[str, str, str]] = []
        """Every assistant status set, in order: (channel_id, thread_ts, status)."""
        self.suggested_prompts: dict[tuple[str, str | None], JsonDict] = {}
        """Suggested prompts (title and prompts) by (channel_id, thread_ts)."""
        self._clock = clock
        self._messages: dict[str, list[JsonDict]] = defaultdict(list)
        self._home_views: dict[str, str] = {}
        self._last_micros = 0
        self._serial = 0
        self.add_user(self.identity.bot_user_id, name=self.identity.bot_name, is_bot=True)
        for user_id, fields in (users or {}).items():
            self.add_user(user_id, **fields)

    def now(self) -> float:
        """The workspace's clock (message timestamps, response_url expiry)."""
        return self._clock()

    def leave(self, channel: str) -> None:
        """The bot is no longer a member of ``channel``: posting there is ``not_in_channel``."""
        self.not_in_channels.add(channel)

    def join(self, channel: str) -> None:
        """The bot is invited to ``channel`` (``/invite @airlock``)."""
        self.not_in_channels.discard(channel)

    def add_user(self, user_id: str, **fields: Any) -> JsonDict:
        """Add or replace a user; ``fields`` override the defaults of a Slack user object."""
        name = fields.pop("name", user_id.lower())
        profile = {"real_name": name, "display_name": name, **fields.pop("profile", {})}
        user: JsonDict = {
            "id": user_id,
            "team_id": self.identity.team_id,
            "name": name,
            "deleted": False,
            "real_name": profile["real_name"],
            "tz": "UTC",
            "is_admin": False,
            "is_owner": False,
            "is_bot": False,
            "profile": profile,
            **fields,
        }
        self.users[user_id] = user
        return user

    def add_message(
        self,
        *,
        channel: str,
        text: str,
        user: str,
        ts: str | None = None,
        thread_ts: str | None = None,
    ) -> JsonDict:
        """Seed a message someone else wrote (e.g. the one an event payload points at)."""
        message: JsonDict = {"type": "message", "user": user, "text": text, "ts": ts or self._ts()}
        self._store(channel, message, thread_ts)
        return message

    def messages(self, channel: str) -> list[JsonDict]:
        """Messages in ``channel``, replies included, oldest first."""
        return list(self._messages.get(channel, []))

    def handle(self, method: str, args: JsonDict) -> JsonDict:
        """The JSON body Slack would answer ``method`` with (tokens already checked)."""
        handler = _HANDLERS.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        try:
            return {"ok": True, **handler(self, args)}
        except _SlackError as e:
            return e.body

    # -- state helpers ------------------------------------------------------------

    def _ts(self) -> str:
        """A message ts from the clock, in microseconds, forced strictly increasing."""
        self._last_micros = max(int(self._clock() * 1_000_000), self._last_micros + 1)
        return f"{self._last_micros // 1_000_000}.{self._last_micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}{self._serial:08X}"

    def _channel(self, args: JsonDict, key: str = "channel", *, reading: bool = False) -> str:
        channel = str(_require(args, key))
        if channel[0] in "UW" and channel in self.users:
            return "D" + channel[1:]
        if channel in self.not_in_channels:
            raise _SlackError("not_in_channel")
        known = channel in self._messages if self.channels is None else channel in self.channels
        if not known and (reading or self.channels is not None):
            raise _SlackError("channel_not_found")
        return channel

    def _find(self, channel: str, ts: str) -> JsonDict:
        found = next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)
        if found is None:
            raise _SlackError("message_not_found")
        return found

    def _store(self, channel: str, message: JsonDict, thread_ts: str | None) -> None:
        if thread_ts and thread_ts != message["ts"]:
            message["thread_ts"] = thread_ts
            parent = next((m for m in self._messages[channel] if m["ts"] == thread_ts), None)
            if parent is not None:
                message["parent_user_id"] = parent.get("user")
                repliers = parent.setdefault("reply_users", [])
                if message["user"] not in repliers:
                    repliers.append(message["user"])
                parent.update(
                    thread_ts=thread_ts,
                    reply_count=parent.get("reply_count", 0) + 1,
                    reply_users_count=len(repliers),
                    latest_reply=message["ts"],
                )
        self._messages[channel].append(message)

    def _bot_message(self, args: JsonDict) -> JsonDict:
        if not any(args.get(k) for k in ("text", "blocks", "attachments")):
            raise _SlackError("no_text")
        _refuse(message_error(args))
        ident = self.identity
        message: JsonDict = {
            "type": "message",
            "text": args.get("text", ""),
            "user": ident.bot_user_id,
            "bot_id": ident.bot_id,
            "app_id": ident.app_id,
            "team": ident.team_id,
            "ts": self._ts(),
            "blocks": args.get("blocks") or [],
        }
        message.update({k: args[k] for k in ("attachments", "metadata") if k in args})
        return message

    def _view(self, args: JsonDict, view_id: str, root_id: str | None = None) -> JsonDict:
        spec = _require(args, "view")
        if not isinstance(spec, dict) or "type" not in spec:
            raise _SlackError("invalid_arguments")
        _refuse(view_error(spec))
        ident = self.identity
        view: JsonDict = {
            "id": view_id,
            "team_id": ident.team_id,
            "type": spec["type"],
            "blocks": spec.get("blocks", []),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self._clock())}.{self._next_id('h')}",
            "clear_on_close": spec.get("clear_on_close", False),
            "notify_on_close": spec.get("notify_on_close", False),
            "previous_view_id": None,
            "root_view_id": root_id or view_id,
            "app_id": ident.app_id,
            "bot_id": ident.bot_id,
            "app_installed_team_id": ident.team_id,
            **{k: spec[k] for k in _RESPONSE_VIEW_KEYS if k in spec},
        }
        self.views[view_id] = view
        return view

    # -- method handlers: parsed args in, the body after ``"ok": true`` out ----------

    def _auth_test(self, args: JsonDict) -> JsonDict:
        i = self.identity
        return {
            "url": f"https://{i.team_domain}.slack.com/",
            "team": i.team_name,
            "user": i.bot_name,
            "team_id": i.team_id,
            "user_id": i.bot_user_id,
            "bot_id": i.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: JsonDict) -> JsonDict:
        channel = self._channel(args)
        message = self._bot_message(args)
        self._store(channel, message, args.get("thread_ts"))
        return {"channel": channel, "ts": message["ts"], "message": message}

    def _update(self, args: JsonDict) -> JsonDict:
        channel = self._channel(args, reading=True)
        message = self._find(channel, _require(args, "ts"))
        if message.get("user") != self.identity.bot_user_id:
            raise _SlackError("cant_update_message")
        _refuse(message_error(args))
        message.update({k: args[k] for k in ("text", "blocks", "attachments") if k in args})
        message["edited"] = {"user": self.identity.bot_user_id, "ts": self._ts()}
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message["text"],
            "message": message,
        }

    def _post_ephemeral(self, args: JsonDict) -> JsonDict:
        channel = self._channel(args)
        message = {**self._bot_message(args), "channel": channel, "user": _require(args, "user")}
        self.ephemerals.append(message)
        return {"message_ts": message["ts"]}

    def _delete(self, args: JsonDict) -> JsonDict:
        channel = self._channel(args, reading=True)
        message = self._find(channel, _require(args, "ts"))
        if message.get("user") != self.identity.bot_user_id:
            raise _SlackError("cant_delete_message")
        self._messages[channel].remove(message)
        return {"channel": channel, "ts": message["ts"]}

    def _get_permalink(self, args: JsonDict) -> JsonDict:
        channel = self._channel(args, reading=True)
        message = self._find(channel, _require(args, "message_ts"))
        ts = message["ts"]
        link = f"https://{self.identity.team_domain}.slack.com/archives/{channel}/p"
        link += ts.replace(".", "")
        if message.get("thread_ts", ts) != ts:
            link += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _views_open(self, args: JsonDict) -> JsonDict:
        _require(args, "trigger_id")
        return {"view": self._view(args, self._next_id("V"))}

    def _views_update(self, args: JsonDict) -> JsonDict:
        external = args.get("external_id")
        view_id = args.get("view_id") or next(
            (v["id"] for v in self.views.values() if external and v.get("external_id") == external),
            None,
        )
        previous = self.views.get(view_id or "")
        if previous is None:
            raise _SlackError("not_found")
        if args.get("hash") and args["hash"] != previous["hash"]:
            raise _SlackError("hash_conflict")
        return {"view": self._view(args, previous["id"], previous["root_view_id"])}

    def _views_publish(self, args: JsonDict) -> JsonDict:
        user_id = _require(args, "user_id")
        if user_id not in self.users:
            raise _SlackError("user_not_found")
        view_id = self._home_views.setdefault(user_id, self._next_id("V"))
        return {"view": self._view(args, view_id)}

    def _reactions_add(self, args: JsonDict) -> JsonDict:
        key = (self._channel(args), _require(args, "timestamp"), _require(args, "name"))
        if key in self.reactions:
            raise _SlackError("already_reacted")
        self.reactions.add(key)
        return {}

    def _users_info(self, args: JsonDict) -> JsonDict:
        user = self.users.get(_require(args, "user"))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": user}

    def _usergroup_users(self, args: JsonDict) -> JsonDict:
        members = self.usergroups.get(_require(args, "usergroup"))
        if members is None:
            raise _SlackError("no_such_subteam")
        return {"users": list(members)}

    def _history(self, args: JsonDict) -> JsonDict:
        channel = self._channel(args, reading=True)
        top = [
            m
            for m in self._messages[channel]
            if m.get("thread_ts", m["ts"]) == m["ts"] or m.get("reply_broadcast")
        ]
        return _page(top[::-1], args)

    def _replies(self, args: JsonDict) -> JsonDict:
        channel = self._channel(args, reading=True)
        ts = _require(args, "ts")
        thread = [m for m in self._messages[channel] if ts in (m["ts"], m.get("thread_ts"))]
        if not thread:
            raise _SlackError("thread_not_found")
        return _page(thread, args)

    def _set_status(self, args: JsonDict) -> JsonDict:
        key = (_require(args, "channel_id"), _require(args, "thread_ts"))
        self.statuses[key] = str(args.get("status", ""))
        self.status_history.append((*key, self.statuses[key]))
        return {}

    def _set_suggested_prompts(self, args: JsonDict) -> JsonDict:
        """Up to four prompts, each with a title and a message (the method's usage notes)."""
        channel = _require(args, "channel_id")
        prompts = _require(args, "prompts")
        if (
            not isinstance(prompts, list)
            or not 0 < len(prompts) <= 4
            or not all(isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts)
        ):
            raise _SlackError("invalid_arguments", response_metadata={"messages": [
                "[ERROR] prompts must be 1 to 4 objects with title and message"]})  # fmt: skip
        self.suggested_prompts[(channel, args.get("thread_ts"))] = {
            "title": args.get("title"), "prompts": prompts}  # fmt: skip
        return {}

    # -- streamed messages (chat.startStream / appendStream / stopStream) ----------------

    def _start_stream(self, args: JsonDict) -> JsonDict:
        """A bot message in the streaming state. Slack asks for both recipient fields from a
        bot token wherever it streams, and takes at most 12,000 characters a call."""
        channel = self._channel(args)
        thread_ts = _require(args, "thread_ts")
        for field in ("recipient_user_id", "recipient_team_id"):
            if not args.get(field):
                raise _SlackError(f"missing_{field}")
        text = _stream_text(args)
        ident = self.identity
        message: JsonDict = {
            "type": "message", "subtype": "bot_message", "text": text, "user": ident.bot_user_id,
            "bot_id": ident.bot_id, "app_id": ident.app_id, "team": ident.team_id,
            "ts": self._ts(), "streaming_state": "in_progress",
            "blocks": [{"type": "markdown", "text": text}] if text else [],
        }  # fmt: skip
        self._store(channel, message, thread_ts)
        return {"channel": channel, "ts": message["ts"]}

    def _append_stream(self, args: JsonDict) -> JsonDict:
        channel, message = self._streaming(args)
        if not args.get("markdown_text") and not args.get("chunks"):
            raise _SlackError("invalid_arguments", response_metadata={"messages": [
                "[ERROR] missing required field: markdown_text"]})  # fmt: skip
        self._grow(message, _stream_text(args))
        return {"channel": channel, "ts": message["ts"]}

    def _stop_stream(self, args: JsonDict) -> JsonDict:
        channel, message = self._streaming(args)
        blocks = args.get("blocks")
        if blocks is not None:
            _refuse(message_error({"blocks": blocks}))
        self._grow(message, _stream_text(args))
        message["streaming_state"] = "completed"
        message["blocks"] = message["blocks"] + list(blocks or [])
        if "metadata" in args:
            message["metadata"] = args["metadata"]
        return {"channel": channel, "ts": message["ts"], "message": message}

    def _streaming(self, args: JsonDict) -> tuple[str, JsonDict]:
        channel = self._channel(args, reading=True)
        message = self._find(channel, _require(args, "ts"))
        if message.get("user") != self.identity.bot_user_id:
            raise _SlackError("cant_update_message")
        if message.get("streaming_state") != "in_progress":
            raise _SlackError("message_not_in_streaming_state")
        return channel, message

    @staticmethod
    def _grow(message: JsonDict, text: str) -> None:
        if not text:
            return
        message["text"] += text
        message["blocks"] = [{"type": "markdown", "text": message["text"]}]


_HANDLERS: dict[str, Callable[[SlackWorkspace, JsonDict], JsonDict]] = {
    "auth.test": SlackWorkspace._auth_test,
    "chat.postMessage": SlackWorkspace._post_message,
    "chat.update": SlackWorkspace._update,
    "chat.postEphemeral": SlackWorkspace._post_ephemeral,
    "chat.delete": SlackWorkspace._delete,
    "chat.getPermalink": SlackWorkspace._get_permalink,
    "views.open": SlackWorkspace._views_open,
    "views.update": SlackWorkspace._views_update,
    "views.publish": SlackWorkspace._views_publish,
    "reactions.add": SlackWorkspace._reactions_add,
    "users.info": SlackWorkspace._users_info,
    "usergroups.users.list": SlackWorkspace._usergroup_users,
    "conversations.history": SlackWorkspace._history,
    "conversations.replies": SlackWorkspace._replies,
    "assistant.threads.setStatus": SlackWorkspace._set_status,
    "assistant.threads.setSuggestedPrompts": SlackWorkspace._set_suggested_prompts,
    "chat.startStream": SlackWorkspace._start_stream,
    "chat.appendStream": SlackWorkspace._append_stream,
    "chat.stopStream": SlackWorkspace._stop_stream,
}


def _refuse(answer: JsonDict | None) -> None:
    """Raise Slack's refusal (from :mod:`~agent_core.testing.slack_limits`), if there is one."""
    if answer is not None:
        fields = {k: v for k, v in answer.items() if k not in ("ok", "error")}
        raise _SlackError(answer["error"], **fields)


def _stream_text(args: JsonDict) -> str:
    """The Markdown one stream call adds: ``markdown_text`` and ``markdown_text`` chunks."""
    pieces = [args.get("markdown_text") or ""]
    chunks = args.get("chunks") or []
    if not isinstance(chunks, list):
        raise _SlackError("invalid_chunks")
    for chunk in chunks:
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        if kind not in ("markdown_text", "task_update", "plan_update", "blocks"):
            raise _SlackError("invalid_chunks")
        if kind == "markdown_text":
            pieces.append(str(chunk.get("text") or ""))
    for piece in pieces:
        if len(piece.encode("utf-16-le", "surrogatepass")) // 2 > MARKDOWN_TEXT:
            raise _SlackError("msg_too_long")
    return "".join(pieces)


def _require(args: JsonDict, name: str) -> Any:
    value = args.get(name)
    if value is None or value == "":
        raise _SlackError(
            "invalid_arguments",
            response_metadata={"messages": [f"[ERROR] missing required field: {name}"]},
        )
    return value


def _page(messages: list[JsonDict], args: JsonDict) -> JsonDict:
    limit = int(args.get("limit") or 100)
    return {
        "messages": messages[:limit],
        "has_more": len(messages) > limit,
        "response_metadata": {"next_cursor": ""},
    }
