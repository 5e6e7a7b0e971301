"""Replies only the person who typed something sees.

Every answer to a typed command (a slash command, a typed decision) and every refusal goes
through :func:`reply_privately`, so nobody can make the bot talk in a thread by typing at
it, and how a private reply is delivered is decided in one place:

- a slash command is answered through its ``response_url`` (Bolt's ``respond()``,
  ephemeral), which works where the bot is not a member of the channel;
- anything else (a mention, a typed decision, a click) with ``chat.postEphemeral``;
- where neither reaches the person (the bot is not in the channel, the response_url is
  used up or expired), with a direct message.
"""

from __future__ import annotations

import logging

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["NOT_A_MEMBER", "invite_me", "reply_privately"]

logger = logging.getLogger(__name__)

NOT_A_MEMBER = frozenset({"not_in_channel", "channel_not_found"})
"""Slack's errors for a conversation the bot cannot post in."""


def invite_me(error: str) -> str:
    """What to tell someone who asked for something where the bot cannot post."""
    if error == "not_in_channel":
        return (":wave: I'm not a member of this channel, so I can't answer here: invite me "
                "with `/invite @airlock` and ask again, or send me the goal in a direct "
                "message.")  # fmt: skip
    return ("I can't post in this conversation: invite me to a channel with `/invite @airlock`"
            " and ask there, or send me the goal in a direct message.")  # fmt: skip


async def reply_privately(
    client: AsyncWebClient,
    *,
    user: str,
    channel: str | None,
    text: str,
    thread_ts: str | None = None,
    respond: AsyncRespond | None = None,
) -> None:
    """Tell ``user`` alone: through ``respond`` (a slash command's response_url) if given, an
    ephemeral message where they are, or a direct message when there is no channel (a
    button in App Home) or the bot cannot post there."""
    if respond is not None and respond.response_url and await _responded(respond, text):
        return
    try:
        if channel is not None:
            await client.chat_postEphemeral(channel=channel, user=user, text=text,
                                            thread_ts=thread_ts)  # fmt: skip
            return
    except SlackApiError as error:
        if error.response.get("error") not in NOT_A_MEMBER:
            _undelivered(user, error)
            return
    try:
        await client.chat_postMessage(channel=user, text=text)
    except SlackApiError as error:  # the reply is a courtesy; what it answers is done
        _undelivered(user, error)


async def _responded(respond: AsyncRespond, text: str) -> bool:
    """Whether the response_url took the reply (HTTP 200); Slack refuses used or expired ones."""
    try:
        answer = await respond(text=text, response_type="ephemeral", replace_original=False)
    except (aiohttp.ClientError, TimeoutError) as error:
        logger.warning("response_url not reached", extra={"error": type(error).__name__})
        return False
    if answer.status_code != 200:
        refused = {"status": answer.status_code, "error": answer.body[:100]}
        logger.warning("response_url refused the reply", extra=refused)
    return answer.status_code == 200


def _undelivered(user: str, error: SlackApiError) -> None:
    logger.warning("private reply not delivered", extra={
        "user": user, "error": error.response.get("error")})  # fmt: skip
