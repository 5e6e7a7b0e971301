"""The bot's Slack client waits out a rate limit instead of dropping a post."""

from __future__ import annotations

from agent_core.config import Settings
from agent_core.testing.slack_server import SlackStandIn
from bot.slack.app import build_client


async def test_a_rate_limited_post_is_retried_after_retry_after() -> None:
    async with SlackStandIn(bot_token="xoxb-limits") as slack:
        client = build_client(Settings(slack_bot_token="xoxb-limits", slack_api_url=slack.api_url))
        slack.fail_next("chat.postMessage", retry_after=0)
        posted = await client.chat_postMessage(channel="C111", text="hello")
    assert posted["ok"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200]
