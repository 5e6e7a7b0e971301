"""Requests to the bot built and signed exactly as Slack sends them.

Slack signs every HTTP request with the app's signing secret: ``X-Slack-Signature``
is ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{raw body}``, and receivers
reject a ``X-Slack-Request-Timestamp`` more than five minutes off. Events arrive
as JSON, slash commands as a form, interactions as a form with one ``payload``
field holding JSON. The payload samples recorded from Slack's SDK test suites
are loaded with :func:`load_payload`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import aiohttp

from agent_core.errors import StandInError

__all__ = [
    "PAYLOADS_ENV",
    "SlackRequest",
    "SlackRequestSigner",
    "load_json_payload",
    "load_payload",
    "load_text_payload",
    "payloads_dir",
    "post_to_bot",
]

PAYLOADS_ENV = "AIRLOCK_SLACK_PAYLOADS"
"""Environment variable naming the folder of recorded Slack payload samples."""

# Copied byte for byte from the official Slack SDKs' test suites; see SOURCES.md there.
_SHIPPED = Path(__file__).resolve().parent / "slack_payloads"
_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"


class SlackRequest(NamedTuple):
    """A raw request body and the headers Slack sends with it."""

    body: str
    """The exact bytes (as text) that were signed."""
    headers: dict[str, str]
    """Content-Type, signature, timestamp, and retry headers when asked for."""


class SlackRequestSigner:
    """Signs request bodies with a signing secret, as Slack does.

    ``clock`` gives the timestamp when a builder is not handed one; inject a
    fixed or shifted clock to replay old samples or produce stale requests.
    """

    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = signing_secret.encode()
        self._clock = clock

    def sign(self, body: str, timestamp: int) -> str:
        """``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
        base = f"v0:{timestamp}:{body}".encode()
        return "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()

    def request(
        self,
        body: str,
        *,
        content_type: str,
        timestamp: int | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> SlackRequest:
        """Sign ``body`` and build Slack's headers; retries add ``X-Slack-Retry-*``."""
        ts = int(self._clock()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": self.sign(body, ts),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return SlackRequest(body=body, headers=headers)

    def event(
        self,
        payload: Mapping[str, Any] | str,
        *,
        timestamp: int | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> SlackRequest:
        """An Events API delivery (``event_callback``, ``url_verification``) as JSON."""
        body = payload if isinstance(payload, str) else json.dumps(payload)
        return self.request(
            body,
            content_type=_JSON,
            timestamp=timestamp,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )

    def command(
        self,
        form: Mapping[str, str] | str,
        *,
        timestamp: int | None = None,
    ) -> SlackRequest:
        """A slash command: the fields form-encoded, or a raw form body as given."""
        body = form if isinstance(form, str) else urlencode(form)
        return self.request(body, content_type=_FORM, timestamp=timestamp)

    def interaction(
        self,
        payload: Mapping[str, Any] | str,
        *,
        timestamp: int | None = None,
    ) -> SlackRequest:
        """A block action, view submission or shortcut: ``payload=<urlencoded JSON>``.

        A ``str`` is taken as a complete raw form body (e.g. a ``*_form.txt`` sample).
        """
        body = payload if isinstance(payload, str) else "payload=" + quote(json.dumps(payload))
        return self.request(body, content_type=_FORM, timestamp=timestamp)


async def post_to_bot(
    url: str,
    request: SlackRequest,
    *,
    session: aiohttp.ClientSession | None = None,
    timeout: float = 5.0,
) -> tuple[int, str]:
    """POST ``request`` to ``url`` as Slack would; returns (HTTP status, body text)."""
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await post_to_bot(url, request, session=own, timeout=timeout)
    async with session.post(
        url,
        data=request.body.encode(),
        headers=request.headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as response:
        return response.status, await response.text()


def payloads_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder of recorded Slack payloads: ``$AIRLOCK_SLACK_PAYLOADS``, else the copy
    shipped in this package (``slack_payloads/``, sources in its SOURCES.md). Raises
    ``StandInError`` if missing.
    """
    env = os.environ if environ is None else environ
    override = env.get(PAYLOADS_ENV)
    folder = Path(override) if override else _SHIPPED
    if not folder.is_dir():
        raise StandInError(
            f"Slack payload samples not found at {folder}; set {PAYLOADS_ENV} to the "
            "folder holding them (app_mention.json, slash_command.txt, ...)"
        )
    return folder


def load_payload(name: str, *, folder: Path | None = None) -> dict[str, Any] | str:
    """A payload sample by file name: parsed for ``.json``, the exact text otherwise."""
    path = (folder or payloads_dir()) / name
    if not path.is_file():
        raise StandInError(f"no Slack payload sample {name!r} in {path.parent}")
    text = path.read_bytes().decode("utf-8")  # no newline translation: bodies are signed
    if path.suffix != ".json":
        return text
    data = json.loads(text)
    if not isinstance(data, dict):
        raise StandInError(f"Slack payload sample {name!r} is not a JSON object")
    return data


def load_json_payload(name: str, *, folder: Path | None = None) -> dict[str, Any]:
    """A ``.json`` payload sample, parsed."""
    data = load_payload(name, folder=folder)
    if not isinstance(data, dict):
        raise StandInError(f"Slack payload sample {name!r} is not JSON")
    return data


def load_text_payload(name: str, *, folder: Path | None = None) -> str:
    """A raw-body payload sample (``.txt``), byte for byte."""
    data = load_payload(name, folder=folder)
    if not isinstance(data, str):
        raise StandInError(f"Slack payload sample {name!r} is not raw text")
    return data
