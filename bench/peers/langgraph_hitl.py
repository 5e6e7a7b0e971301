"""LangGraph's human in the loop on the one-tool goal, and an SDK loop beside it, as JSON.

    LANGGRAPH_VENV/bin/python bench/peers/langgraph_hitl.py --base-url URL [--goals 50]

Run by ``bench.one_tool_goal`` with the python of a venv of its own (langgraph, langchain,
langchain-anthropic, langgraph-checkpoint-sqlite, aiosqlite, anthropic), never the
project's: it imports nothing of airlock, so the SDK loop is written here again rather than
imported (``bench.one_tool_goal`` needs the project's packages). ``URL`` is the Anthropic
stand-in the main bench started, scripted as for airlock: a tool_use of ``restart``, then
end_turn once the tool's result is back.

LangGraph's side: ``create_agent`` with ``HumanInTheLoopMiddleware`` gating ``restart`` and
an ``AsyncSqliteSaver`` checkpointer on a file (its default durability, ``async``), a new
thread per goal; the goal runs until its interrupt, then is resumed at once with
``Command(resume=...)`` approving. The baseline: the ``anthropic`` SDK in a loop, approving
with a function call. Wall and CPU milliseconds (``time.process_time`` of this process) per
goal, after one warm-up goal each. Prints one JSON object: versions, and for ``langgraph``
and ``sdk`` their ``walls`` and ``cpus``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anthropic
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command

KEY = "sk-ant-bench"  # the stand-in's key (bench/_standin.py)
MODEL = "claude-sonnet-4-6"
SCHEMA = {"type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]}
PACKAGES = ("langgraph", "langchain", "langchain-anthropic", "langgraph-checkpoint-sqlite",
            "anthropic")  # fmt: skip


@tool
async def restart(target: str) -> str:
    """Restart a service."""
    return f"{target} restarted"


async def sdk_goal(client: anthropic.AsyncAnthropic) -> None:
    """The goal through the SDK: call, approve the tool call, run it, send its result."""
    tools: list[Any] = [{"name": "restart", "description": "Restart a service.",
                         "input_schema": SCHEMA}]  # fmt: skip
    messages: list[Any] = [{"role": "user", "content": "restart web"}]
    while True:
        message = await client.messages.create(
            model=MODEL, max_tokens=1024, tools=tools, messages=messages
        )
        if message.stop_reason != "tool_use":
            return
        messages.append({"role": "assistant", "content": message.content})
        results = []
        for block in message.content:
            if block.type == "tool_use":
                output = await restart.ainvoke(dict(block.input)) if approve() else "denied"
                results.append({"type": "tool_result", "tool_use_id": block.id,
                                "content": output})  # fmt: skip
        messages.append({"role": "user", "content": results})


def approve() -> bool:
    """The person, who approves at once."""
    return True


async def timed(goal: Callable[[int], Awaitable[None]], goals: int) -> dict[str, list[float]]:
    """``goals`` goals one after another after a warm-up: wall and CPU milliseconds each."""
    walls, cpus = [], []
    for index in range(goals + 1):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        await goal(index)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if index:
            walls.append(wall * 1000)
            cpus.append(cpu * 1000)
    return {"walls": walls, "cpus": cpus}


async def langgraph(base_url: str, goals: int, folder: Path) -> dict[str, list[float]]:
    model = ChatAnthropic(model_name=MODEL, api_key=KEY, base_url=base_url, max_retries=0,
                          max_tokens=1024, timeout=30, stop=None)  # fmt: skip
    async with AsyncSqliteSaver.from_conn_string(str(folder / "checkpoints.db")) as saver:
        agent = create_agent(
            model, tools=[restart], checkpointer=saver,
            middleware=[HumanInTheLoopMiddleware(interrupt_on={"restart": True})],
        )  # fmt: skip

        async def goal(index: int) -> None:
            config: Any = {"configurable": {"thread_id": f"goal-{index}"}}
            asked = await agent.ainvoke(
                {"messages": [{"role": "user", "content": "restart web"}]}, config, version="v2"
            )
            if len(asked.interrupts) != 1:
                raise RuntimeError(f"expected one interrupt, got {asked.interrupts!r}")
            approved = {"decisions": [{"type": "approve"} for _ in asked.interrupts[0].value[
                "action_requests"]] if approve() else []}  # fmt: skip
            done = await agent.ainvoke(Command(resume=approved), config, version="v2")
            last = done.value["messages"][-1]
            if done.interrupts or not isinstance(last, AIMessage) or last.tool_calls:
                raise RuntimeError(f"the goal did not end with the model's answer: {last!r}")

        return await timed(goal, goals)


async def main(base_url: str, goals: int) -> None:
    async with anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0) as client:

        async def sdk(index: int) -> None:
            await sdk_goal(client)

        baseline = await timed(sdk, goals)
    with tempfile.TemporaryDirectory(prefix="langgraph-bench-") as name:
        measured = await langgraph(base_url, goals, Path(name))
    versions = {package: version(package) for package in PACKAGES}
    print(json.dumps({"versions": versions, "langgraph": measured, "sdk": baseline}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the Anthropic stand-in")
    parser.add_argument("--goals", type=int, default=50, help="goals measured per side")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.base_url, arguments.goals))
