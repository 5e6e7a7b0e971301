"""The Anthropic stand-in in a process of its own, so it does not weigh on what is measured.

python -m bench._standin [LATENCY_SECONDS]   # prints its base URL, serves until stdin closes

``LATENCY_SECONDS`` (default 0) is added to every reply: a model that takes that long.
"""

from __future__ import annotations

import asyncio
import sys

from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)

KEY = "sk-ant-bench"


def answer(request: RecordedRequest) -> Reply:
    """Ask for one HIGH tool call, then finish once its result is back."""
    if request.tool_results():
        return text_reply("restarted")
    return tool_use_reply("restart", {"target": "web"})


async def main(latency: float) -> None:
    async with AnthropicStandIn(api_key=KEY, default=answer, latency=latency) as server:
        print(server.base_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.requests.clear()  # nothing to check: the benchmark asserts nothing here


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.0))
