"""A local stand-in for Slack's Web API, served over real HTTP.

Real clients talk to it unchanged: ``AsyncWebClient(base_url=slack.api_url)``.
:class:`SlackStandIn` serves a :class:`~agent_core.testing.slack_workspace.SlackWorkspace`
on an ephemeral port, records every call, and can fail the next call of a method
on request, so the bot's error handling meets Slack's wire format. It also hands out
response_urls (:meth:`SlackStandIn.response_url`, :mod:`agent_core.testing.slack_hooks`)
and records what is posted to them as calls of the pseudo-method :data:`RESPONSE_URL`.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import WSMsgType, web

from agent_core.errors import StandInError
from agent_core.testing.slack_hooks import ResponseUrls
from agent_core.testing.slack_workspace import (
    _HANDLERS,
    JsonDict,
    SlackIdentity,
    SlackWorkspace,
    _SlackError,
)

__all__ = ["RESPONSE_URL", "SlackCall", "SlackIdentity", "SlackStandIn", "SlackWorkspace"]

RESPONSE_URL = "response_url"
"""The ``method`` of a recorded POST to a response_url (its ``args``: the JSON posted)."""

_JSON_ARGS = ("blocks", "attachments", "view", "metadata", "user_auth_blocks", "chunks",
              "prompts")  # fmt: skip


@dataclass(kw_only=True)
class SlackCall:
    """One Web API call as the stand-in saw it."""

    method: str
    """API method, e.g. ``chat.postMessage``."""
    args: JsonDict
    """Query and body arguments merged, JSON-valued form fields decoded, token removed."""
    token: str | None
    """Token from ``Authorization: Bearer`` or the ``token`` argument."""
    http_method: str
    """``GET`` or ``POST``."""
    status: int
    """HTTP status of the answer."""
    response: JsonDict
    """JSON body of the answer (for a response_url, whose answer is plain text: ``ok`` is
    ``{"ok": true}``, an error string ``{"ok": false, "error": …}``)."""
    url: str | None = None
    """The response_url posted to (method :data:`RESPONSE_URL`); None for Web API calls."""


@dataclass(kw_only=True)
class _Fault:
    """A canned failure for one call."""

    status: int
    body: JsonDict
    retry_after: int | None
    when: Callable[[JsonDict], bool] | None = None
    """Only calls whose arguments it accepts fail; None: the next call, whatever it is."""


class SlackStandIn:
    """Slack's Web API on ``127.0.0.1`` and an ephemeral port.

    ``async with SlackStandIn(bot_token="xoxb-test") as slack:`` then point clients
    at :attr:`api_url`. Only ``bot_token`` is accepted; anything else gets
    ``invalid_auth`` (or ``not_authed`` when no token is sent).
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        app_token: str | None = None,
        workspace: SlackWorkspace | None = None,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        """The app-level token ``apps.connections.open`` accepts (Socket Mode), if any."""
        self.socket_acks: list[JsonDict] = []
        """What Socket Mode clients sent back (acks of envelopes), in order."""
        self._sockets: list[web.WebSocketResponse] = []
        self.uploads: dict[str, bytes] = {}
        """File contents uploaded to the URLs files.getUploadURLExternal handed out, by file id."""
        self.shared_files: list[JsonDict] = []
        """What files.completeUploadExternal shared: file ids, titles, channel, thread."""
        self.workspace = workspace or SlackWorkspace()
        """The state behind the API: users, groups, messages, views, reactions."""
        self.hooks = ResponseUrls(self.workspace, self.workspace.now)
        """The response_urls handed out, and what they answered."""
        self.calls: list[SlackCall] = []
        """Every call received, in order, failed ones included."""
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start serving on an ephemeral port."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/commands/{team}/{serial}/{secret}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop serving; the recorded calls stay readable."""
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        """Base URL for ``AsyncWebClient(base_url=...)``, ending in ``/api/``."""
        if self._port is None:
            raise StandInError("SlackStandIn is not started; use `async with SlackStandIn()`")
        return f"http://127.0.0.1:{self._port}/api/"

    def response_url(self, *, user: str, channel: str) -> str:
        """A fresh response_url for a slash command ``user`` typed in ``channel``: put it in
        the signed form in place of Slack's ``https://hooks.slack.com/commands/…``."""
        return self.hooks.mint(self._base(), user=user, channel=channel)

    def _base(self) -> str:
        return self.api_url.removesuffix("/api/")

    def calls_to(self, method: str) -> list[SlackCall]:
        """Recorded calls of ``method``, in order."""
        return [call for call in self.calls if call.method == method]

    async def wait_for_call(
        self,
        method: str | tuple[str, ...],
        predicate: Callable[[SlackCall], bool] | None = None,
        *,
        timeout: float = 5.0,
        since: int = 0,
    ) -> SlackCall:
        """The first call of ``method`` (or of any of several) at index >= ``since`` that
        ``predicate`` accepts.

        Returns at once if one is recorded already; pass ``since=len(slack.calls)``
        to consider only calls made from now on. Raises ``TimeoutError`` naming
        the calls seen if none arrives within ``timeout`` seconds.
        """

        def match() -> SlackCall | None:
            return next(
                (
                    c
                    for c in self.calls[since:]
                    if c.method in ((method,) if isinstance(method, str) else method)
                    and (predicate is None or predicate(c))
                ),
                None,
            )

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: match() is not None)
        except TimeoutError:
            seen = [c.method for c in self.calls[since:]]
            raise TimeoutError(f"no matching {method} call in {timeout}s; saw {seen}") from None
        call = match()
        assert call is not None
        return call

    async def wait_for_answer(
        self, contains: str = "", *, timeout: float = 5.0, since: int = 0
    ) -> str:
        """The Markdown of the first answer at index >= ``since`` containing ``contains``: a
        stream stopped (its whole text), or a message of ``markdown`` blocks posted or edited
        (the text of those blocks)."""

        def found() -> str | None:
            for call in self.calls[since:]:
                text = _answer_text(call)
                if text is not None and contains in text:
                    return text
            return None

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: found() is not None)
        except TimeoutError:
            seen = [c.method for c in self.calls[since:]]
            raise TimeoutError(f"no answer with {contains!r} in {timeout}s; saw {seen}") from None
        text = found()
        assert text is not None
        return text

    def fail_next(
        self,
        method: str,
        *,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int = 1,
        times: int = 1,
        fields: Mapping[str, Any] | None = None,
        when: Callable[[JsonDict], bool] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``{"ok": false, "error": error}``.

        ``status`` defaults to 429 for ``ratelimited`` (sent with ``Retry-After:
        retry_after``) and to 200 otherwise, as Slack does. ``fields`` adds body
        fields, e.g. ``{"needed": "chat:write", "provided": "..."}`` for ``missing_scope``.
        ``when`` picks which calls fail by their arguments (say, only messages with blocks).
        """
        code = status if status is not None else (429 if error == "ratelimited" else 200)
        for _ in range(times):
            self._faults[method].append(
                _Fault(
                    status=code,
                    body={"ok": False, "error": error, **(fields or {})},
                    retry_after=retry_after if code == 429 else None,
                    when=when,
                )
            )

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        headers: dict[str, str] = {}
        status = 200
        try:
            args = await _read_args(request)
        except _SlackError as e:
            args, body = {}, e.body
        else:
            status, body, headers = self._answer(method, args, _bearer(request))
        token = _bearer(request) or args.pop("token", None)
        await self._record(
            SlackCall(
                method=method,
                args=args,
                token=token,
                http_method=request.method,
                status=status,
                response=body,
            )
        )
        return web.json_response(body, status=status, headers=headers)

    def _answer(
        self,
        method: str,
        args: JsonDict,
        bearer: str | None,
    ) -> tuple[int, JsonDict, dict[str, str]]:
        fault = self._take_fault(method, args)
        if fault is not None:
            retry = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return fault.status, fault.body, retry
        token = bearer or args.get("token")
        if method == "apps.connections.open":
            return 200, self._connections_open(token), {}
        if method in _FILE_METHODS and token == self.bot_token:
            return 200, self._files(method, args), {}
        if method not in _HANDLERS:
            return 200, self.workspace.handle(method, args), {}
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if token != self.bot_token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        return 200, self.workspace.handle(method, args), {}

    def _take_fault(self, method: str, args: JsonDict) -> _Fault | None:
        faults = self._faults.get(method)
        found = next((f for f in faults or () if f.when is None or f.when(args)), None)
        if faults is not None and found is not None:
            faults.remove(found)
        return found

    def _connections_open(self, token: str | None) -> JsonDict:
        if self.app_token is None or token != self.app_token:
            return {"ok": False, "error": "invalid_auth" if token else "not_authed"}
        return {"ok": True, "url": f"ws://127.0.0.1:{self._port}/socket"}

    def _files(self, method: str, args: JsonDict) -> JsonDict:
        """The two Web API halves of files_upload_v2; the bytes go to :meth:`_upload`."""
        if method == "files.getUploadURLExternal":
            if not args.get("filename") or not str(args.get("length", "")).isdigit():
                missing = "[ERROR] missing required field: filename or length"
                return {"ok": False, "error": "invalid_arguments",
                        "response_metadata": {"messages": [missing]}}  # fmt: skip
            file_id = f"F{len(self.uploads) + len(self.shared_files) + 1:08d}"
            self.uploads.setdefault(file_id, b"")
            url = f"http://127.0.0.1:{self._port}/upload/{file_id}"
            return {"ok": True, "upload_url": url, "file_id": file_id}
        files = args.get("files")
        files = json.loads(files) if isinstance(files, str) else files or []
        shared = {
            "files": files,
            "channel": args.get("channel_id"),
            "thread_ts": args.get("thread_ts"),
            "comment": args.get("initial_comment"),
        }
        self.shared_files.append(shared)
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    async def _hook(self, request: web.Request) -> web.Response:
        """A POST to a response_url: answered like Slack's hooks, recorded as a call."""
        key = "/".join(request.match_info[k] for k in ("team", "serial", "secret"))
        status, text, body = self.hooks.answer(key, await request.read(), request.content_type)
        answer = {"ok": True} if status == 200 else {"ok": False, "error": text}
        await self._record(SlackCall(method=RESPONSE_URL, args=body, token=None,
                                     http_method=request.method, status=status,
                                     response=answer, url=str(request.url)))  # fmt: skip
        return web.Response(status=status, text=text, content_type="text/html")

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.uploads:
            return web.Response(status=404, text="no such upload")
        self.uploads[file_id] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[file_id])}")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: say hello, then record what the client sends until it leaves."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_json({"type": "hello", "num_connections": 1,
                                "connection_info": {"app_id": "A111"}})  # fmt: skip
        async with self._changed:
            self._sockets.append(socket)
            self._changed.notify_all()
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    async with self._changed:
                        self.socket_acks.append(json.loads(message.data))
                        self._changed.notify_all()
        finally:
            self._sockets.remove(socket)
        return socket

    async def drop_sockets(self) -> None:
        """Close every Socket Mode connection, as Slack does when it rotates them."""
        for socket in list(self._sockets):
            await socket.close()

    async def send_envelope(self, envelope: JsonDict, *, timeout: float = 10.0) -> None:
        """Deliver a Socket Mode envelope once a client is connected."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: bool(self._sockets))
        await self._sockets[-1].send_json(envelope)

    async def send_text(self, text: str, *, timeout: float = 10.0) -> None:
        """Deliver a raw text frame on Socket Mode (garbage, to test the client's resilience)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: bool(self._sockets))
        await self._sockets[-1].send_str(text)

    async def wait_for_ack(self, envelope_id: str, *, timeout: float = 10.0) -> JsonDict:
        """The client's acknowledgement of ``envelope_id``."""

        def found() -> JsonDict | None:
            return next((a for a in self.socket_acks if a.get("envelope_id") == envelope_id), None)

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
        ack = found()
        assert ack is not None
        return ack

    async def _record(self, call: SlackCall) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()


_FILE_METHODS = frozenset({"files.getUploadURLExternal", "files.completeUploadExternal"})


def _answer_text(call: SlackCall) -> str | None:
    """The answer a call showed, if it showed one (see :meth:`SlackStandIn.wait_for_answer`)."""
    if not call.response.get("ok"):
        return None
    if call.method == "chat.stopStream":
        return str(call.response["message"]["text"])
    if call.method in ("chat.postMessage", "chat.update"):
        markdown = [b["text"] for b in call.args.get("blocks") or []
                    if isinstance(b, dict) and b.get("type") == "markdown"]  # fmt: skip
        return "".join(markdown) if markdown else None
    return None


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def _read_args(request: web.Request) -> JsonDict:
    """Query string and body merged, as Slack reads them; the body wins."""
    args: JsonDict = dict(request.query)
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except json.JSONDecodeError:
            raise _SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise _SlackError("invalid_json")
        return {**args, **body}
    form = await request.post()
    args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in _JSON_ARGS:
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except json.JSONDecodeError:
                raise _SlackError(f"invalid_{key}") from None
    return args
