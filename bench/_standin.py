"""The Anthropic stand-in in a process of its own, so it does not weigh on what is measured.

python -m bench._standin   # prints its base URL, serves until stdin closes
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


async def main() -> None:
    async with AnthropicStandIn(api_key=KEY, default=answer) as server:
        print(server.base_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.requests.clear()  # nothing to check: the benchmark asserts nothing here


if __name__ == "__main__":
    asyncio.run(main())
