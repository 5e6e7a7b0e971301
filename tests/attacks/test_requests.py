"""What bad requests cost: forged, stale, garbled and malformed requests to `airlock serve`.

Unsigned garbage gets 400 or 401 and costs a short log line at most; a request Slack did
sign but that does not say what airlock needs gets 200 or 400 and changes nothing; none of
them ever gets a 500 or leaves a stack trace in the log.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_requests import SlackRequest, SlackRequestSigner, load_json_payload
from agent_core.testing.slack_server import SlackStandIn
from tests.attacks.harness import (
    APPROVER,
    CLICK,
    COMMAND,
    DM,
    MENTION,
    SUBMISSION,
    Served,
)
from tests.attacks.test_authority import pending
from tests.e2e.test_serve import clean_env
from tests.support import airlock_serve

JSON, FORM = "application/json", "application/x-www-form-urlencoded"


def resigned(request: SlackRequest, **headers: str | None) -> SlackRequest:
    """``request`` with ``headers`` replaced (None removes one)."""
    changed = dict(request.headers)
    for name, value in headers.items():
        key = name.replace("_", "-")
        changed.pop(key, None)
        if value is not None:
            changed[key] = value
    return SlackRequest(request.body, changed)


def forgeries(signer: SlackRequestSigner) -> dict[str, SlackRequest]:
    """Fourteen ways to send a mention that Slack did not sign (or not now)."""
    good = signer.event(MENTION)
    now = int(time.time())
    other = signer.event({**MENTION, "event_id": "Ev999"})
    body = good.body
    return {
        "wrong secret": SlackRequestSigner("not-the-secret").event(MENTION),
        "no signature": resigned(good, X_Slack_Signature=None),
        "no timestamp": resigned(good, X_Slack_Request_Timestamp=None),
        "no headers": SlackRequest(body, {"Content-Type": JSON}),
        "stale": signer.event(MENTION, timestamp=now - 6 * 60),
        "from the future": signer.event(MENTION, timestamp=now + 6 * 60),
        "body changed after signing": SlackRequest(
            body.replace("Hi there", "rm -rf"), good.headers
        ),
        "timestamp changed after signing": resigned(good, X_Slack_Request_Timestamp=str(now + 1)),
        "v1 signature": resigned(
            good, X_Slack_Signature="v1=" + good.headers["X-Slack-Signature"][3:]
        ),
        "truncated signature": resigned(
            good, X_Slack_Signature=good.headers["X-Slack-Signature"][:40]
        ),
        "upper-case signature": resigned(
            good, X_Slack_Signature="v0=" + good.headers["X-Slack-Signature"][3:].upper()
        ),
        "empty signature": resigned(good, X_Slack_Signature=""),
        "another request's signature": SlackRequest(body, other.headers),
        "signature of the empty body": resigned(good, X_Slack_Signature=signer.sign("", now)),
    }


async def test_fourteen_forged_or_stale_signatures_get_401_and_no_model_call(
    bot: Served,
) -> None:
    forged = forgeries(bot.signer)
    assert len(forged) == 14
    for name, request in forged.items():
        assert await bot.send(request) == 401, name
    assert bot.anthropic.message_requests() == [] and await bot.store.list_runs() == []
    assert bot.slack.calls_to("chat.postMessage") == []


async def raw(bot: Served, method: str, body: bytes, headers: dict[str, str]) -> int:
    """Send ``body`` as it is; the HTTP status."""
    data = io.BytesIO(body) if len(body) > 1000 else body  # large bodies: as aiohttp asks
    async with bot.http.request(method, bot.url, data=data, headers=headers) as response:
        await response.read()
        return response.status


def garbage(bot: Served) -> list[tuple[str, bytes, dict[str, str]]]:
    """Requests that are refused before anything is verified: (method, body, headers)."""
    mention = bot.signer.event(MENTION)
    body, signed = mention.body.encode(), mention.headers
    ts, sig = "X-Slack-Request-Timestamp", "X-Slack-Signature"
    return [
        ("POST", body, {**signed, ts: "abc"}),
        ("POST", body, {**signed, ts: "9" * 40}),
        ("POST", body, {**signed, ts: "-1"}),
        ("POST", body, {**signed, ts: "1e10"}),
        ("POST", body, {**signed, ts: " 1700000000"}),
        ("POST", body, {**signed, ts: "١٢٣"}),  # digits, but not ASCII ones
        ("POST", body, {**signed, ts: ""}),
        ("POST", body, {"Content-Type": JSON}),
        ("POST", body, {**signed, sig: "v0=" + "z" * 64}),
        ("POST", b"{not json", {**signed}),
        ("POST", b"\xff\xfe\x00garbage", {**signed}),
        ("POST", b"payload=%7Bbroken", {**signed, "Content-Type": FORM}),
        ("POST", body, {**signed, "Content-Type": "text/plain"}),
        ("POST", b"x" * ((1 << 20) + 1), {**signed}),
        ("POST", b"", {}),
        ("GET", b"", {}),
        ("PUT", body, signed),
        ("DELETE", b"", signed),
        ("PATCH", body, signed),
        ("POST", b"[" * 10_000, {**signed}),
    ]


async def test_a_burst_of_garbage_gets_400_or_401_and_a_few_short_log_lines(
    bot: Served,
) -> None:
    kinds = garbage(bot)
    before = bot.log.stat().st_size
    started = time.monotonic()
    statuses = await asyncio.gather(
        *(raw(bot, *kinds[i % len(kinds)]) for i in range(300))
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert set(statuses) <= {400, 401}, sorted(set(statuses))
    assert [s for s in statuses[: len(kinds)]].count(401) >= 8
    await _still_serving(bot)
    log = bot.log.read_bytes()[before:].decode(errors="replace")
    assert "Traceback" not in log
    assert len(log.splitlines()) < 300 and len(log) < 100_000, (len(log.splitlines()), len(log))
    assert elapsed < 30
    assert await bot.store.list_runs() == [] and bot.anthropic.message_requests() == []


async def _still_serving(bot: Served) -> None:
    """A good request still works after the garbage."""
    assert "status" in (await bot.agent("help", APPROVER)).lower()


# --- signed by Slack, but not what airlock needs -------------------------------------------


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    where = changed
    for key in path[:-1]:
        where = where[key]
    del where[path[-1]]
    return changed


def _with(body: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    where: Any = changed
    for key in path[:-1]:
        where = where[key]
    where[path[-1]] = value
    return changed


def _click(action_id: str, value: str, user: str = APPROVER) -> dict[str, Any]:
    body = _with(CLICK, user, "user", "id")
    body["actions"][0].update(action_id=action_id, value=value)
    return body


def _view(callback_id: str, metadata: str, **view: Any) -> dict[str, Any]:
    body = copy.deepcopy(SUBMISSION)
    body["view"].update(callback_id=callback_id, private_metadata=metadata, **view)
    return body


def _form(**fields: str) -> str:
    return urlencode(fields)


def malformed(approval_id: str) -> dict[str, tuple[str, Callable[[SlackRequestSigner], Any]]]:
    """Signed payloads, derived from Slack's samples, that lack or garble what is needed."""
    meta = json.dumps({"approval": approval_id, "channel": "C111", "thread": None})
    event, click = MENTION, CLICK
    events: dict[str, Any] = {
        "event missing": _without(event, "event"),
        "event is a string": _with(event, "app_mention", "event"),
        "event is a list": _with(event, [1, 2], "event"),
        "event without type": _without(event, "event", "type"),
        "mention without channel": _without(event, "event", "channel"),
        "mention without user": _without(event, "event", "user"),
        "mention without ts": _without(event, "event", "ts"),
        "user is a number": _with(event, 42, "event", "user"),
        "text is an object": _with(event, {"a": 1}, "event", "text"),
        "unknown event type": _with(event, "reaction_added", "event", "type"),
        "no type": _without(event, "type"),
        "unknown type": _with(event, "garbage", "type"),
        "url_verification without challenge": {"type": "url_verification", "token": "x"},
        "url_verification with an object": {"type": "url_verification", "challenge": {"a": 1}},
        "DM without channel": _without(DM, "event", "channel"),
        "DM thread_ts is a number": _with(
            _with(DM, 1.5, "event", "thread_ts"), "x", "event", "text"
        ),
        "app_home_opened without user": _with(
            event, {"type": "app_home_opened", "tab": "home"}, "event"
        ),
        "authorizations is a string": _with(event, "nope", "authorizations"),
        "team_id is an object": _with(event, {"id": 1}, "team_id"),
        "event_id is an object": _with(event, {"id": 1}, "event_id"),
        "empty object": {},
    }
    interactions: dict[str, Any] = {
        "click without user": _without(_click("airlock_approve", approval_id), "user"),
        "click user is a string": _with(_click("airlock_approve", approval_id), "W1", "user"),
        "click without actions": _without(click, "actions"),
        "click with no action": _with(click, [], "actions"),
        "action is a string": _with(click, ["airlock_approve"], "actions"),
        "unknown action id": _click("airlock_unknown", approval_id),
        "approve a value that is no approval id": _click("airlock_approve", "click_me_123"),
        "approve an approval that does not exist": _click("airlock_approve", "apr_000000000000"),
        "approve without value": _without(
            _click("airlock_approve", approval_id), "actions", 0, "value"
        ),  # type: ignore[arg-type]
        "edit a value that is no approval id": _click("airlock_edit", "../../etc/passwd"),
        "reject-with-reason without trigger": _without(
            _click("airlock_reject_reason", approval_id), "trigger_id"
        ),
        "container is a string": _with(_click("airlock_approve", approval_id), "x", "container"),
        "view metadata not JSON": _view("airlock_reject_view", "{broken"),
        "view metadata without approval": _view("airlock_reject_view", "{}"),
        "view metadata names no approval": _view(
            "airlock_edit_view",
            json.dumps({"approval": "'; DROP TABLE runs; --", "channel": "C1", "thread": None}),
        ),
        "view without state": _without(_view("airlock_reject_view", meta), "view", "state"),
        "view state values a list": _view("airlock_reject_view", meta, state={"values": []}),
        "view without user": _without(_view("airlock_reject_view", meta), "user"),
        "view of an unknown modal": _view("someone_elses_view", meta),
        "edit view without its field": _view("airlock_edit_view", meta, state={"values": {}}),
    }
    forms: dict[str, str] = {
        "payload not JSON": "payload=" + quote("{nope"),
        "payload a JSON list": "payload=" + quote("[1, 2]"),
        "payload JSON null": "payload=null",
        "form of random fields": _form(a="1", b="2"),
        "command without user": urlencode(
            {k: v for k, v in COMMAND.items() if k != "user_id"}
            | {"command": "/agent", "text": "status"}
        ),
        "command without channel": urlencode(
            {k: v for k, v in COMMAND.items() if k != "channel_id"}
            | {"command": "/agent", "text": "halt now"}
        ),
        "unknown command": urlencode(COMMAND | {"command": "/other", "text": "x"}),
        "command field missing": urlencode({k: v for k, v in COMMAND.items() if k != "command"}),
    }
    deep = '{"type": "event_callback", "event": ' + "[" * 10_000 + "]" * 10_000 + "}"
    cases: dict[str, tuple[str, Callable[[SlackRequestSigner], Any]]] = {}
    for n, (name, body) in enumerate(events.items()):
        if isinstance(body.get("event_id"), str):  # each its own delivery, not a retry
            body["event_id"] = f"EvMalformed{n:03d}"
        cases[name] = ("event", lambda s, b=body: s.event(b))
    for name, body in interactions.items():
        cases[name] = ("interaction", lambda s, b=body: s.interaction(b))
    for name, text in forms.items():
        cases[name] = ("form", lambda s, t=text: s.command(t))
    cases["JSON nested 10,000 deep"] = ("event", lambda s: s.event(deep))
    cases["JSON list"] = ("event", lambda s: s.event("[]"))
    cases["JSON null"] = ("event", lambda s: s.event("null"))
    cases["JSON string"] = ("event", lambda s: s.event('"event_callback"'))
    return cases


async def test_signed_but_malformed_payloads_get_200_or_400_and_change_nothing(
    bot: Served,
) -> None:
    approval = await pending(bot, live=True)
    cases = malformed(approval.id)
    assert len(cases) >= 40
    before = await bot.snapshot()
    before_log = bot.log.stat().st_size
    statuses = {}
    for name, (_, build) in cases.items():
        statuses[name] = await bot.send(build(bot.signer))
    assert {n: s for n, s in statuses.items() if s not in (200, 400)} == {}
    await _still_serving(bot)
    after = await bot.snapshot()
    assert (after["runs"], after["approvals"], after["halt"]) == (
        before["runs"], before["approvals"], before["halt"])  # fmt: skip
    log = bot.log.read_bytes()[before_log:].decode(errors="replace")
    assert "Traceback" not in log and len(log.splitlines()) <= len(cases) + 5
    assert all(len(line) < 1000 for line in log.splitlines())
    assert bot.anthropic.message_requests() == [] and bot.slack.calls_to("views.open") == []


async def test_socket_mode_garbage_does_not_stop_the_client(tmp_path: Path) -> None:
    token, app_token, key = "xoxb-socket-attack", "xapp-1-A111-attack", "sk-ant-socket-attack"
    envelope = load_json_payload("socket_mode_app_mention_envelope.json")
    plan = {"subtasks": [{"id": "s1", "description": "look", "required_tools": [],
                          "depends_on": [], "risk_level": "low"}]}  # fmt: skip
    script = [tool_use_reply("submit_plan", plan), text_reply("queue depth is 3")]
    port, log = free_port(), tmp_path / "serve.log"
    async with (
        SlackStandIn(bot_token=token, app_token=app_token) as slack,
        AnthropicStandIn(api_key=key, script=script) as anthropic,
    ):
        env = clean_env(
            SLACK_BOT_TOKEN=token, SLACK_APP_TOKEN=app_token, SLACK_API_URL=slack.api_url,
            ANTHROPIC_API_KEY=key, ANTHROPIC_BASE_URL=anthropic.base_url,
            AIRLOCK_DATA_DIR=str(tmp_path / "data"), AIRLOCK_PORT=str(port),
            AIRLOCK_LLM_MAX_RETRIES="0",
        )  # fmt: skip
        with log.open("wb") as sink:
            async with airlock_serve(env, tmp_path, port, stderr=sink.fileno()):
                await slack.wait_for_call("apps.connections.open", timeout=30)
                for text in ("{not json", "[1, 2]", '"hello"', "null", "{}" * 3, "\x00\xff"):
                    await slack.send_text(text)
                for junk in _junk_envelopes(envelope):
                    await slack.send_envelope(junk)
                good = copy.deepcopy(envelope)
                good["envelope_id"] = "good-envelope"
                good["payload"]["event_id"] = "EvGoodAfterJunk"
                good["payload"]["event"]["text"] = "<@U111> check the queue depth"
                await slack.send_envelope(good)
                await slack.wait_for_ack("good-envelope", timeout=30)
                done = await slack.wait_for_answer("**completed**", timeout=30)
        assert "queue depth is 3" in done
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and len(text.splitlines()) < 60


def _junk_envelopes(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    """Envelopes whose frame is JSON but whose content is not what Slack sends."""
    mention = envelope["payload"]
    junk: list[dict[str, Any]] = [
        {"type": "events_api", "payload": "garbage"},
        {"type": "events_api", "payload": [1, 2]},
        {"type": "events_api", "payload": None},
        {"type": 7, "payload": {"type": "event_callback", "event": 7}},
        {"type": "events_api", "payload": {"type": "event_callback", "event": "x"}},
        {"type": "events_api", "envelope_id": {"a": 1}, "payload": {"event_id": []}},
        {"type": "events_api", "payload": {**mention, "event": {**mention["event"], "user": 5}}},
        {"type": "interactive", "payload": {"type": "block_actions"}},
        {"type": "slash_commands", "payload": {"command": "/agent"}},
    ]
    for n, change in enumerate(junk):
        change.setdefault("envelope_id", f"junk-{n}")
        change.setdefault("accepts_response_payload", False)
    return [*junk, {"type": "hello"}, {"type": "events_api"}]


BROKEN_HTTP = [
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"100000\r\n"
    + b"a" * 0x100000
    + b"\r\n"
    + b"100000\r\n"
    + b"a" * 0x100000
    + b"\r\n0\r\n\r\n",
]


async def _send_bytes(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_requests_that_are_not_even_http_cost_one_line_each(bot: Served) -> None:
    port = int(bot.url.rsplit(":", 1)[1].split("/")[0])
    before = bot.log.stat().st_size
    for _ in range(10):
        answers = [await _send_bytes(port, data) for data in BROKEN_HTTP]
        assert all(not a or a.split(b" ", 2)[1] in (b"400", b"401") for a in answers), answers
    await _still_serving(bot)
    log = bot.log.read_bytes()[before:].decode(errors="replace")
    assert "Traceback" not in log
    assert len(log.splitlines()) <= len(BROKEN_HTTP) * 10 and len(log) < 100_000
