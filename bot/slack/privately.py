"""Replies only the person who typed something sees.

Every answer to a typed command (a slash command, a typed decision) and every refusal goes
through :func:`reply_privately`, so nobody can make the bot talk in a thread by typing at
it, and how a private reply is delivered is decided in one place.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["reply_privately"]

logger = logging.getLogger(__name__)


async def reply_privately(
    client: AsyncWebClient,
    *,
    user: str,
    channel: str | None,
    text: str,
    thread_ts: str | None = None,
) -> None:
    """Tell ``user`` alone: an ephemeral message where they are, or a direct message when
    there is no channel (a button in App Home)."""
    try:
        if channel is None:
            await client.chat_postMessage(channel=user, text=text)
        else:
            await client.chat_postEphemeral(channel=channel, user=user, text=text,
                                            thread_ts=thread_ts)  # fmt: skip
    except SlackApiError as error:  # the reply is a courtesy; what it answers is done
        logger.warning("private reply not delivered", extra={
            "user": user, "error": error.response.get("error")})  # fmt: skip
