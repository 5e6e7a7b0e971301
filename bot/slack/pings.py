"""Who gets a HIGH or CRITICAL request in a direct message: each named approver.

The request names user ids and user-group ids (``AIRLOCK_APPROVERS``, or an escalation
hop's); groups are resolved with ``usergroups.users.list``. The requester is left out (they
see the card in their own thread), as is anything that is not a Slack id, and the list is
capped, so a huge group cannot make one request send thousands of messages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["MAX_PINGED", "approvers_to_ping", "usergroup_members"]

logger = logging.getLogger(__name__)

MAX_PINGED = 50
"""The most direct messages one request sends."""

_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
_GROUP = re.compile(r"S[A-Z0-9]{2,20}")


def usergroup_members(client: AsyncWebClient) -> Callable[[str], Awaitable[set[str]]]:
    """How this workspace resolves a user group to its members, for pings and for who may
    decide (the core's decision path is given it before any channel exists)."""

    async def members_of(group: str) -> set[str]:
        response = await client.usergroups_users_list(usergroup=group)
        return set(response.get("users") or [])

    return members_of


async def approvers_to_ping(
    named: Iterable[str],
    members_of: Callable[[str], Awaitable[set[str]]],
    *,
    requester: str | None,
) -> list[str]:
    """The user ids to message, in the order named, each once, at most :data:`MAX_PINGED`."""
    users: list[str] = []
    for who in named:
        members = [who]
        if _GROUP.fullmatch(who):
            try:
                members = sorted(await members_of(who))
            except SlackApiError as error:  # the group's members are pinged next time
                logger.warning("approver group not resolved", extra={
                    "group": who, "error": error.response.get("error")})  # fmt: skip
                continue
        users += [m for m in members if _USER.fullmatch(m) and m != requester and m not in users]
    return users[:MAX_PINGED]
