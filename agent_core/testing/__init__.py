"""Local stand-ins for Slack, Anthropic and Redis, shared by tests, benchmarks and the demo.

Nothing here is imported by the running bot; it exists so that everything can
be exercised offline against real HTTP servers and a real redis-server. The names here are
what the demo uses (``bot/`` imports nothing else of this package); tests import the modules.
"""

from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.slack_requests import (
    SlackRequest,
    SlackRequestSigner,
    load_json_payload,
    post_to_bot,
)
from agent_core.testing.slack_server import SlackCall, SlackIdentity, SlackStandIn

__all__ = [
    "AnthropicStandIn",
    "RecordedRequest",
    "Reply",
    "SlackCall",
    "SlackIdentity",
    "SlackRequest",
    "SlackRequestSigner",
    "SlackStandIn",
    "load_json_payload",
    "post_to_bot",
    "text_reply",
    "tool_use_reply",
]
