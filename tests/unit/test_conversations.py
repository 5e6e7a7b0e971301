"""Which kind of conversation a goal was said in: from what Slack sent, never from an id."""

from __future__ import annotations

import pytest

from agent_core.models import ChannelKind, Run
from agent_core.testing.slack_requests import load_json_payload
from bot.slack.conversations import kind_of_command, kind_of_event
from bot.slack.visibility import PRIVATE_GOAL, asked_privately, goal_seen_by

PUBLIC, PRIVATE, DIRECT = ChannelKind.PUBLIC, ChannelKind.PRIVATE, ChannelKind.DIRECT


def test_the_recorded_payloads_give_their_kinds() -> None:
    dm = load_json_payload("message_im.json")["event"]
    assistant = load_json_payload("message_im_assistant_thread.json")["event"]
    mention = load_json_payload("app_mention.json")["event"]
    assert kind_of_event(dm, otherwise=PUBLIC) is DIRECT
    assert kind_of_event(assistant, otherwise=PUBLIC) is DIRECT
    assert kind_of_event(mention, otherwise=PUBLIC) is PUBLIC  # a mention says no kind


@pytest.mark.parametrize(
    ("channel", "channel_type", "kind"),
    [
        ("C0DM", "im", DIRECT),  # a DM whose id does not start with D
        ("D0PUBLIC", "channel", PUBLIC),  # a channel whose id does
        ("D0TEAM", "group", PRIVATE),
        ("C0FEW", "mpim", PRIVATE),
        ("D0ODD", "something new", PRIVATE),
    ],
)
def test_an_events_kind_is_its_channel_type_whatever_its_id(
    channel: str, channel_type: str, kind: ChannelKind
) -> None:
    assert kind_of_event({"channel": channel, "channel_type": channel_type},
                         otherwise=PUBLIC) is kind  # fmt: skip


@pytest.mark.parametrize(
    ("channel_id", "channel_name", "kind"),
    [
        ("C0DM", "directmessage", DIRECT),
        ("D0OPS", "ops", PUBLIC),
        ("C0SECRET", "privategroup", PRIVATE),
        ("G0FEW", "mpdm-ana--bob-1", PRIVATE),
        ("C0NONAME", "", PRIVATE),
    ],
)
def test_a_commands_kind_is_its_channel_name_whatever_its_id(
    channel_id: str, channel_name: str, kind: ChannelKind
) -> None:
    assert kind_of_command({"channel_id": channel_id, "channel_name": channel_name}) is kind


def test_who_reads_a_goal_follows_the_runs_kind_never_its_channel_id() -> None:
    public_like_a_dm = Run(goal="restart web", requester="U0ANA", channel="D0OPS",
                           channel_kind=PUBLIC)  # fmt: skip
    dm_unlike_a_dm = Run(goal="my salary", requester="U0ANA", channel="C0DM", channel_kind=DIRECT)
    stored_before = Run.model_validate({"goal": "old", "requester": "U0ANA", "channel": "C0OPS"})
    assert not asked_privately(public_like_a_dm)
    assert goal_seen_by(public_like_a_dm, "U0BOB", limit=50) == "restart web"
    assert asked_privately(dm_unlike_a_dm)
    assert goal_seen_by(dm_unlike_a_dm, "U0BOB", limit=50) == PRIVATE_GOAL
    assert goal_seen_by(dm_unlike_a_dm, "U0ANA", limit=50) == "my salary"
    assert goal_seen_by(stored_before, "U0BOB", limit=50) == PRIVATE_GOAL
