"""The OpenTelemetry GenAI semantic-convention names airlock emits, in one place.

Spans and attributes follow the GenAI conventions of OpenTelemetry semantic-conventions
v1.41.0 (docs/gen-ai: ``invoke_agent`` internal span, inference span ``chat {model}``,
``execute_tool`` span), plus the ``plan`` operation and span that
open-telemetry/semantic-conventions-genai added (PR #97, released in v0.1.0), where the GenAI
conventions now live. The two client metrics are v1.41.0's ``gen_ai.client.operation.duration``
and ``gen_ai.client.token.usage``, with its bucket advice: semantic-conventions-genai v0.1.0
moves model calls to ``gen_ai.client.inference.*`` instruments, which collectors and the
``opentelemetry-semantic-conventions`` package do not know yet; changing over is a change to
this module. Everything without a convention is under ``airlock.*``.
"""

from __future__ import annotations

from typing import Final

PROVIDER: Final = "anthropic"
"""``gen_ai.provider.name``: every model call goes to the Anthropic Messages API (or a server
that speaks it, such as a gateway; ``server.address`` tells those apart)."""
AGENT: Final = "airlock"
"""``gen_ai.agent.name`` of the agent a run invokes."""
TOOL_TYPE: Final = "function"
"""``gen_ai.tool.type``: the model chooses the arguments and airlock runs the tool (built-ins
and MCP tools alike), which is the conventions' ``function``."""

OPERATION: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
AGENT_NAME: Final = "gen_ai.agent.name"
CONVERSATION: Final = "gen_ai.conversation.id"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
TOKEN_TYPE: Final = "gen_ai.token.type"

DURATION: Final = "gen_ai.client.operation.duration"
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                           20.48, 40.96, 81.92)  # fmt: skip
TOKEN_USAGE: Final = "gen_ai.client.token.usage"
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                        16777216, 67108864)  # fmt: skip
