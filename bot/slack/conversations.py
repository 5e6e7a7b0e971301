"""What kind of conversation a goal was said in, from what Slack sent with it.

Events of the ``message`` family carry ``channel_type`` (``im``, ``mpim``, ``group``,
``channel``). A slash command carries ``channel_name``: ``directmessage`` in a direct
message, ``privategroup`` in a private channel, ``mpdm-…`` in a group DM. An ``app_mention``
carries neither; Slack never sends one for a direct message (those come as ``message.im``), so
it is a channel, taken as public as every channel was before the kind was kept. A channel's id
says nothing here: an id is not a promise of who can read the conversation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_core import ChannelKind

__all__ = ["kind_of_command", "kind_of_event"]

_BY_CHANNEL_TYPE = {
    "im": ChannelKind.DIRECT,
    "mpim": ChannelKind.PRIVATE,
    "group": ChannelKind.PRIVATE,
    "channel": ChannelKind.PUBLIC,
}


def kind_of_event(event: Mapping[str, Any], *, otherwise: ChannelKind) -> ChannelKind:
    """The kind Slack's ``channel_type`` names; ``otherwise`` when the event has none, and
    private for one it does not know."""
    channel_type = event.get("channel_type")
    if channel_type is None:
        return otherwise
    return _BY_CHANNEL_TYPE.get(str(channel_type), ChannelKind.PRIVATE)


def kind_of_command(command: Mapping[str, Any]) -> ChannelKind:
    """The kind of conversation a slash command was typed in, by its ``channel_name``."""
    name = str(command.get("channel_name") or "")
    if name == "directmessage":
        return ChannelKind.DIRECT
    if name == "privategroup" or name.startswith("mpdm-"):
        return ChannelKind.PRIVATE
    return ChannelKind.PUBLIC if name else ChannelKind.PRIVATE
