"""Attacks on the workspace confinement of read_file and write_file, with real files.

Every test drives the real tools; the race test runs a real process that swaps a folder of
the workspace with a symlink to a folder outside it, thousands of times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import platform
import socket
import stat
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent_core.errors import ToolError, ToolRefused
from agent_core.memory.embedder import Embedder
from agent_core.memory.longterm import LongTermMemory
from agent_core.models import Run
from agent_core.store import open_store
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    reply,
    text_reply,
    tool_use_block,
    tool_use_reply,
)
from agent_core.testing.channel import RecordingChannel
from agent_core.tools.base import Tool, ToolContext
from agent_core.tools.builtins import read_file_tool, write_file_tool
from tests.e2e.test_run_cli import KEY, airlock_run
from tests.e2e.test_serve import clean_env
from tests.support import missing

SWAPPER = Path(__file__).with_name("swapper.py")
OUTSIDE_TEXT = "OUTSIDE: never to be read through the workspace\n"
INSIDE_TEXT = "inside\n"
DEADLINE = 5.0


def context_for(workspace: Path) -> ToolContext:
    run = Run(goal="attack the workspace", requester="U012AB3CD")
    return ToolContext(run=run, workspace=workspace, channel=RecordingChannel())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the workspace, holding what must never be read or written."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "file.txt").write_text(OUTSIDE_TEXT)
    return folder


@pytest.fixture
def workspace(tmp_path: Path, outside: Path) -> Path:
    folder = tmp_path / "workspace"
    folder.mkdir()
    return folder


async def call(tool: Tool, arguments: dict[str, str], workspace: Path) -> str:
    """One call of ``tool``, under the deadline a tool call has."""
    async with asyncio.timeout(DEADLINE):
        return await tool.handler(arguments, context_for(workspace))


def outside_snapshot(outside: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(outside)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(outside.rglob("*"))
    }


# --- races --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def swapping(first: Path, second: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A process exchanging ``first`` and ``second`` (renameat2 RENAME_EXCHANGE) in a loop."""
    if platform.machine() not in ("x86_64", "aarch64"):
        missing(f"renameat2 syscall number unknown on {platform.machine()}")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SWAPPER), str(first), str(second),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    try:
        async with asyncio.timeout(10):
            assert await process.stdout.readline() == b"ready\n"
        yield process
    finally:
        process.stdin.close()
        async with asyncio.timeout(10):
            await process.wait()


async def test_a_folder_swapped_for_a_symlink_never_leaks_a_read_or_a_write(
    workspace: Path, outside: Path
) -> None:
    inside = workspace / "d"
    inside.mkdir()
    (inside / "file.txt").write_text(INSIDE_TEXT)
    (workspace / "l").symlink_to(outside, target_is_directory=True)
    before = outside_snapshot(outside)
    read, write = read_file_tool(), write_file_tool(workspace=workspace)
    context = context_for(workspace)
    outcomes: dict[str, int] = {"inside": 0, "outside": 0, "refused": 0, "written": 0}

    async def read_once(path: str) -> None:
        try:
            text = await read.handler({"path": path}, context)
        except ToolError:
            outcomes["refused"] += 1
            return
        outcomes["outside" if "OUTSIDE" in text else "inside"] += 1

    async def write_once(path: str) -> None:
        try:
            await write.handler({"path": path, "content": "written by the tool\n"}, context)
        except ToolError:
            outcomes["refused"] += 1
            return
        outcomes["written"] += 1

    async with swapping(workspace / "d", workspace / "l") as swapper:
        for batch in range(60):
            calls = [read_once(f"{name}/file.txt") for name in ("d", "l") * 25]
            calls += [write_once(f"{n}/w{batch}-{i}.txt") for i, n in enumerate(("d", "l") * 10)]
            calls += [write_once(f"d/new{batch}-{i}/deeper/w.txt") for i in range(5)]
            calls += [write_once(f"l/new{batch}-{i}/w.txt") for i in range(5)]
            async with asyncio.timeout(60):
                await asyncio.gather(*calls)
    assert swapper.stdout is not None
    swaps = int((await swapper.stdout.read()).split()[-1])
    print(f"swaps {swaps}, outcomes {outcomes}")
    assert swaps > 1000, "the swapper hardly ran; the race was not exercised"
    assert outcomes["outside"] == 0, outcomes
    assert outside_snapshot(outside) == before, "something was written outside the workspace"
    assert outcomes["inside"] > 0 and outcomes["written"] > 0, outcomes


async def test_a_parent_swapped_during_folder_creation_creates_nothing_outside(
    workspace: Path, outside: Path
) -> None:
    (workspace / "p").mkdir()
    (workspace / "q").symlink_to(outside, target_is_directory=True)
    before = outside_snapshot(outside)
    write = write_file_tool(workspace=workspace)
    context = context_for(workspace)
    async with swapping(workspace / "p", workspace / "q"):
        for round_ in range(200):
            paths = [f"p/a{round_}/b/c/file{i}.txt" for i in range(5)]
            results = await asyncio.gather(
                *(write.handler({"path": p, "content": "x"}, context) for p in paths),
                return_exceptions=True,
            )
            for result in results:
                assert isinstance(result, str | ToolError), result
    assert outside_snapshot(outside) == before


# --- hard links ---------------------------------------------------------------------------


async def test_a_hard_link_to_an_outside_file_is_never_written_or_read(
    workspace: Path, outside: Path
) -> None:
    target = outside / "file.txt"
    os.link(target, workspace / "linked.txt")
    write = write_file_tool(workspace=workspace)
    with pytest.raises(ToolRefused, match="hard link"):
        await call(write, {"path": "linked.txt", "content": "pwned\n"}, workspace)
    with pytest.raises(ToolRefused, match="hard link"):
        await call(read_file_tool(), {"path": "linked.txt"}, workspace)
    assert write.preview is not None
    with pytest.raises(ToolRefused, match="hard link"):  # the approver sees why
        await write.preview({"path": "linked.txt", "content": "pwned\n"})
    assert target.read_text() == OUTSIDE_TEXT
    assert os.stat(target).st_nlink == 2


# --- path forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("..", "outside the workspace"),
        ("../outside/file.txt", "outside the workspace"),
        ("a/../../outside/file.txt", "outside the workspace"),
        ("./../outside/file.txt", "outside the workspace"),
        ("{outside}/file.txt", "outside the workspace"),
        ("/etc/passwd", "outside the workspace"),
        ("{workspace}/../outside/file.txt", "outside the workspace"),
        ("note\x00.txt", "NUL"),
        ("x" * 256, "longer than 255 bytes"),
        ("d/" + "é" * 128, "longer than 255 bytes"),
        ("a/" * 2100 + "x", "longer than 4096 bytes"),
    ],
)
async def test_path_forms_that_cannot_be_used_are_clear_refusals(
    path: str, reason: str, workspace: Path, outside: Path
) -> None:
    path = path.format(outside=outside, workspace=workspace)
    write = write_file_tool(workspace=workspace)
    with pytest.raises(ToolRefused, match=reason):
        await call(read_file_tool(), {"path": path}, workspace)
    with pytest.raises(ToolRefused, match=reason):
        await call(write, {"path": path, "content": "x"}, workspace)
    assert write.preview is not None
    with pytest.raises(ToolRefused, match=reason):
        await write.preview({"path": path, "content": "x"})
    assert os.listdir(workspace) == []
    assert outside_snapshot(outside) == {"file.txt": OUTSIDE_TEXT.encode()}


async def test_paths_that_stay_inside_still_work(workspace: Path) -> None:
    write, read = write_file_tool(workspace=workspace), read_file_tool()
    await call(write, {"path": "a/b/../c/./note.txt", "content": "one"}, workspace)
    assert (workspace / "a" / "c" / "note.txt").read_text() == "one"
    assert await call(read, {"path": f"{workspace}/a/c/note.txt"}, workspace) == "one"
    (workspace / "a" / "to-c").symlink_to("c", target_is_directory=True)
    (workspace / "abs").symlink_to(workspace / "a" / "c" / "note.txt")
    assert await call(read, {"path": "a/to-c/note.txt"}, workspace) == "one"
    assert await call(read, {"path": "abs"}, workspace) == "one"
    await call(write, {"path": "abs", "content": "two"}, workspace)
    assert (workspace / "abs").is_symlink()
    assert (workspace / "a" / "c" / "note.txt").read_text() == "two"


async def test_a_symlink_loop_is_a_clear_error(workspace: Path) -> None:
    (workspace / "loop").symlink_to("loop")
    with pytest.raises(ToolError, match="symbolic links"):
        await call(read_file_tool(), {"path": "loop"}, workspace)
    with pytest.raises(ToolError, match="symbolic links"):
        await call(write_file_tool(workspace=workspace), {"path": "loop/x", "content": ""},
                   workspace)  # fmt: skip


# --- what is not a regular file -----------------------------------------------------------


@contextlib.contextmanager
def unblocking(fifo: Path) -> Iterator[None]:
    """On the way out, open ``fifo`` for writing, so a reader stuck in open() is let go."""
    try:
        yield
    finally:
        for _ in range(64):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as error:
                assert error.errno in (errno.ENXIO, errno.ENOENT)  # no reader left
                break


@pytest.fixture
def special(workspace: Path) -> Iterator[dict[str, Path]]:
    """A FIFO, a Unix socket and a folder in the workspace."""
    fifo = workspace / "pipe"
    os.mkfifo(fifo)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(workspace / "sock"))
    (workspace / "folder").mkdir()
    with unblocking(fifo):
        yield {"pipe": fifo, "sock": workspace / "sock", "folder": workspace / "folder"}
    listener.close()


@pytest.mark.parametrize(
    ("name", "kind"), [("pipe", "FIFO"), ("sock", "socket"), ("folder", "folder")]
)
async def test_what_is_not_a_regular_file_is_refused_at_once(
    name: str, kind: str, special: dict[str, Path], workspace: Path
) -> None:
    write = write_file_tool(workspace=workspace)
    with pytest.raises(ToolRefused, match=kind):
        await call(read_file_tool(), {"path": name}, workspace)
    with pytest.raises(ToolRefused, match=kind):
        await call(write, {"path": name, "content": "x"}, workspace)
    assert write.preview is not None
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(ToolRefused, match=kind):
            await write.preview({"path": name, "content": "x"})
    assert stat.S_ISFIFO(special["pipe"].lstat().st_mode)


async def test_a_device_reached_through_a_symlink_is_refused(workspace: Path) -> None:
    (workspace / "zero").symlink_to("/dev/zero")
    with pytest.raises(ToolRefused, match="outside the workspace"):
        await call(read_file_tool(), {"path": "zero"}, workspace)


async def test_ten_fifo_reads_leave_dns_and_memory_search_answering(
    workspace: Path, special: dict[str, Path], embedder: Embedder, tmp_path: Path
) -> None:
    read = read_file_tool()
    context = context_for(workspace)

    async def read_pipe() -> BaseException | str:
        try:
            async with asyncio.timeout(1.0):  # what the executor's tool timeout does
                return await read.handler({"path": "pipe"}, context)
        except (TimeoutError, ToolError) as error:
            return error

    async with asyncio.timeout(DEADLINE):
        outcomes = await asyncio.gather(*(read_pipe() for _ in range(10)))
    assert all(isinstance(o, ToolRefused) for o in outcomes), outcomes
    loop = asyncio.get_running_loop()
    store = await open_store(f"sqlite:///{tmp_path / 'memory.db'}")
    memory = LongTermMemory(store=store, embedder=embedder, folder=tmp_path / "memory")
    try:
        async with asyncio.timeout(DEADLINE):
            assert await loop.getaddrinfo("localhost", 80)
            await memory.remember(scope="workspace", content="deploys go through CI",
                                  created_by="U0ANA")  # fmt: skip
            found = await memory.recall(scopes=["workspace"], query="how do we deploy", k=1)
        assert found and "CI" in found[0].memory.content
    finally:
        await memory.close()
        await store.close()
    assert not [t.name for t in threading.enumerate() if _in_a_file_tool(t)]


def _in_a_file_tool(thread: threading.Thread) -> bool:
    """Whether ``thread`` is inside a file tool's code now (by its stack)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_filename.endswith(("workspace_fs.py", "builtins/files.py")):
            return True
        frame = frame.f_back
    return False


STUCK_CALL = """
import asyncio, threading, time
from agent_core.tools._file_threads import in_file_thread

async def main():
    release = threading.Event()
    for _ in range(20):  # more than the file threads: the rest wait in line
        try:
            async with asyncio.timeout(0.05):
                await in_file_thread(release.wait)
        except TimeoutError:
            pass
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        await loop.getaddrinfo("localhost", 80)
        await asyncio.to_thread(time.sleep, 0)
    print("answered", flush=True)

asyncio.run(main())
"""


async def test_a_file_call_that_never_returns_starves_nothing_and_the_process_exits(
    tmp_path: Path,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STUCK_CALL, env=clean_env(), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(20):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert out.decode() == "answered\n"


async def test_airlock_run_reading_fifos_finishes_and_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fifos = [data / "workspace" / f"pipe{i}" for i in range(10)]
    fifos[0].parent.mkdir(parents=True)
    for fifo in fifos:
        os.mkfifo(fifo)
    plan = {"subtasks": [{"id": "s1", "description": "read the pipes",
                          "required_tools": ["read_file"], "depends_on": [],
                          "risk_level": "low"}]}  # fmt: skip
    reads = reply(
        content=[tool_use_block("read_file", {"path": fifo.name}) for fifo in fifos],
        stop_reason="tool_use",
    )
    script = [tool_use_reply("submit_plan", plan), reads, text_reply("they are pipes")]
    with contextlib.ExitStack() as stack:
        for fifo in fifos:
            stack.enter_context(unblocking(fifo))
        async with AnthropicStandIn(api_key=KEY, script=script) as server:
            code, out, err = await airlock_run(
                "read the pipes", server=server, data=data,
                extra={"AIRLOCK_TOOL_TIMEOUT_SECONDS": "2"},
            )  # fmt: skip
            results = server.message_requests()[2].tool_results()
    assert code == 0, out + err
    assert len(results) == 10
    assert all(r.get("is_error") and "FIFO" in str(r["content"]) for r in results), results


async def test_a_write_replaces_the_file_whole_and_keeps_its_mode(workspace: Path) -> None:
    script = workspace / "deploy.sh"
    script.write_text("echo old\n")
    script.chmod(0o750)
    before = script.stat().st_ino
    await call(write_file_tool(workspace=workspace), {"path": "deploy.sh", "content": "echo new\n"},
               workspace)  # fmt: skip
    assert script.read_text() == "echo new\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o750
    assert script.stat().st_ino != before  # a new file renamed over the name
    assert sorted(os.listdir(workspace)) == ["deploy.sh"]  # no temporary file left
