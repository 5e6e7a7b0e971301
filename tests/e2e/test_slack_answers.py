"""Answers in Slack against the stand-in: streamed as Markdown where Slack streams, posted
and edited where it does not, cut and attached when long, inert whatever the model wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.channel import PlanReady, RunFinished, StepFinished
from agent_core.models import Plan, Run, RunStatus, Subtask
from agent_core.store import Store, open_store
from agent_core.testing.slack_requests import load_json_payload
from agent_core.testing.slack_server import SlackStandIn
from bot.slack.answers import FEEDBACK
from bot.slack.channel import SlackChannel
from bot.slack.fit import MARKDOWN_TEXT, size

MENTION = load_json_payload("app_mention.json")["event"]
HOSTILE = (
    "## Done\n\n**Disk** is fine. <!channel> ping <@U0BOSS> and <!subteam^S0ALL>; "
    "see [https://wiki.example/fix](https://evil.example/steal) or [the runbook]"
    "(https://wiki.example/runbook).\n\n| host | use |\n|---|---|\n| web1 | 42% |\n"
    "\u202eevil\x00 token xoxb-1234567890-abcdefghijklmnop"
)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[Store, SlackStandIn, AsyncWebClient]]:
    store = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}")
    async with SlackStandIn(bot_token="xoxb-answers") as slack:
        yield store, slack, AsyncWebClient(token="xoxb-answers", base_url=slack.api_url)
    await store.close()


async def _run(store: Store, goal: str = "report") -> Run:
    where = {"channel": MENTION["channel"], "thread_ts": MENTION["ts"]}
    return await store.create_run(Run(goal=goal, requester=MENTION["user"], **where))


def _assert_inert(text: str) -> None:
    for live in ("<!channel>", "<@U0BOSS>", "<!subteam^S0ALL>", "\u202e", "\x00",
                 "abcdefghijklmnop", "[https://wiki.example/fix]("):  # fmt: skip
        assert live not in text, live
    assert "⟨U+202E⟩" in text and "⟨U+0000⟩" in text
    assert "→ [https://evil.example/steal](https://evil.example/steal)" in text


async def test_the_answer_streams_as_markdown_with_feedback_buttons(
    parts: tuple[Store, SlackStandIn, AsyncWebClient],
) -> None:
    store, slack, client = parts
    run = await _run(store)
    answer = HOSTILE + "\n\n" + "\n".join(f"- finding {i}: all good" for i in range(60))
    await SlackChannel(client=client, store=store).notify(
        RunFinished(run=run, status=RunStatus.COMPLETED, result=answer)
    )
    [start] = slack.calls_to("chat.startStream")
    assert start.response["ok"] and start.args["thread_ts"] == MENTION["ts"]
    assert start.args["recipient_user_id"] == MENTION["user"]
    assert start.args["recipient_team_id"] == slack.workspace.identity.team_id
    appended = slack.calls_to("chat.appendStream")
    assert len(appended) >= 2 and all(c.response["ok"] for c in appended)
    [stop] = slack.calls_to("chat.stopStream")
    message = stop.response["message"]
    assert message["streaming_state"] == "completed" and message["thread_ts"] == MENTION["ts"]
    text = message["text"]
    assert text.startswith(":tada: **completed**\n\n## Done\n\n**Disk** is fine.")
    assert "[the runbook](https://wiki.example/runbook)" in text and "| web1 | 42% |" in text
    assert "- finding 59: all good" in text
    _assert_inert(text)
    [markdown, feedback] = message["blocks"]
    assert markdown == {"type": "markdown", "text": text}
    [buttons] = feedback["elements"]
    assert (feedback["type"], buttons["type"], buttons["action_id"]) == (
        "context_actions", "feedback_buttons", FEEDBACK)  # fmt: skip
    assert buttons["positive_button"]["value"] == f"positive {run.id}"
    assert not slack.calls_to("chat.postMessage")  # streamed: nothing posted besides


@pytest.mark.parametrize("error", ["not_allowed_token_type", "missing_scope", "unknown_method"])
async def test_where_slack_will_not_stream_the_answer_is_posted_and_edited(
    parts: tuple[Store, SlackStandIn, AsyncWebClient], error: str
) -> None:
    store, slack, client = parts
    run = await _run(store)
    answer = HOSTILE + "\n\n" + "\n".join(f"- finding {i}: all good" for i in range(60))
    slack.fail_next("chat.startStream", error=error)
    await SlackChannel(client=client, store=store).notify(
        RunFinished(run=run, status=RunStatus.COMPLETED, result=answer)
    )
    [posted] = slack.calls_to("chat.postMessage")
    updates = slack.calls_to("chat.update")
    assert posted.response["ok"] and updates and all(u.response["ok"] for u in updates)
    assert {u.args["ts"] for u in updates} == {posted.response["ts"]}
    final = updates[-1].args
    assert final["blocks"][0]["type"] == "markdown" and final["blocks"][-1]["type"] == (
        "context_actions")  # fmt: skip
    _assert_inert(final["blocks"][0]["text"])
    assert "- finding 59: all good" in final["blocks"][0]["text"]
    assert "<!channel>" not in posted.args["text"]  # the notification text is inert too


async def test_a_stream_slack_closes_early_is_edited_whole(
    parts: tuple[Store, SlackStandIn, AsyncWebClient],
) -> None:
    store, slack, client = parts
    run = await _run(store)
    answer = "\n".join(f"- finding {i}: all good" for i in range(80))
    slack.fail_next("chat.appendStream", error="message_not_in_streaming_state")
    await SlackChannel(client=client, store=store).notify(
        RunFinished(run=run, status=RunStatus.COMPLETED, result=answer)
    )
    [start] = slack.calls_to("chat.startStream")
    [update] = slack.calls_to("chat.update")
    assert update.args["ts"] == start.response["ts"] and update.response["ok"]
    assert "- finding 79: all good" in update.args["blocks"][0]["text"]


async def test_a_long_answer_is_cut_visibly_in_one_message_and_attached_whole(
    parts: tuple[Store, SlackStandIn, AsyncWebClient],
) -> None:
    store, slack, client = parts
    run = await _run(store)
    result = "\n".join(f"line {i}: disk usage {i % 97}% <!here>" for i in range(1200))
    await SlackChannel(client=client, store=store).notify(
        RunFinished(run=run, status=RunStatus.COMPLETED, result=result)
    )
    [stop] = slack.calls_to("chat.stopStream")
    text = stop.response["message"]["text"]
    assert size(text) <= MARKDOWN_TEXT and "<!here>" not in text
    assert "more characters_" in text and "whole answer is attached" in text
    [shared] = slack.shared_files
    assert (shared["channel"], shared["thread_ts"]) == (MENTION["channel"], MENTION["ts"])
    [uploaded] = slack.uploads.values()
    assert b"line 1199: disk usage" in uploaded


async def test_step_outputs_are_markdown_and_the_status_shows_in_channel_threads(
    parts: tuple[Store, SlackStandIn, AsyncWebClient],
) -> None:
    store, slack, client = parts
    run = await _run(store)
    channel = SlackChannel(client=client, store=store)
    plan = Plan(subtasks=[Subtask(id="s1", description="look")])
    await channel.notify(PlanReady(run=run, plan=plan))
    where = (MENTION["channel"], MENTION["ts"])
    assert slack.workspace.statuses[where] == "is working on it…"  # a channel thread, not a DM
    await channel.notify(StepFinished(run=run, subtask_id="s1", status="completed",
                                      summary=HOSTILE))  # fmt: skip
    step = slack.calls_to("chat.postMessage")[-1]
    [block] = step.args["blocks"]
    assert block["type"] == "markdown" and "**Disk** is fine." in block["text"]
    _assert_inert(block["text"])
    await channel.notify(RunFinished(run=run, status=RunStatus.COMPLETED, result="ok"))
    assert slack.workspace.statuses[where] == ""
