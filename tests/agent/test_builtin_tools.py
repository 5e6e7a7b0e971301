"""The built-in tools, driven for real: a local HTTP server, real subprocesses, real files."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from jsonschema import Draft202012Validator

from agent_core.approvals import RiskPolicy
from agent_core.channel import RunEvent
from agent_core.config import load_settings
from agent_core.errors import ToolError, ToolRefused, ToolTimeout
from agent_core.models import Approval, Decision, RiskLevel, Run
from agent_core.tools.base import Tool, ToolContext
from agent_core.tools.builtins import (
    ask_human_tool,
    builtin_tools,
    http_request_tool,
    read_file_tool,
    run_command_tool,
    write_file_tool,
)
from agent_core.tools.builtins.http import IPAddress, check_address
from agent_core.tools.sandbox import CommandSandbox
from tests.processes import host_pid, marked, marker, process_alive
from tests.support import eventually


class AnsweringChannel:
    """An OperatorChannel whose requester answers every question with ``answer``."""

    def __init__(self, answer: str = "") -> None:
        self.answer = answer
        self.questions: list[tuple[str, str]] = []

    async def notify(self, event: RunEvent) -> None:
        return None

    async def request_decision(self, approval: Approval) -> Decision:
        raise AssertionError("the built-in tools never ask for decisions")

    async def ask(self, run: Run, question: str) -> str:
        self.questions.append((run.id, question))
        return self.answer


def make_context(workspace: Path, channel: AnsweringChannel | None = None) -> ToolContext:
    return ToolContext(
        run=Run(goal="exercise the built-in tools", requester="U012AB3CD"),
        workspace=workspace,
        channel=channel or AnsweringChannel(),
    )


# --- http_request ---------------------------------------------------------------------------


@pytest.fixture
async def web_server() -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 and a free port; yields its base URL."""
    release = asyncio.Event()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello there", headers={"X-Secret": "not shown"})

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.Response(text=f"{request.method} {request.headers.get('X-Test')} {body}")

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/hello"}, text="moved")

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="a" * 100_000)

    async def stuck(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/big", big)
    app.router.add_get("/stuck", stuck)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        await runner.cleanup()


async def test_http_request_reaches_an_allowed_host(web_server: str, tmp_path: Path) -> None:
    http = http_request_tool(allow_hosts=["127.0.0.1"])
    output = await http.handler(
        {"method": "GET", "url": f"{web_server}/hello"}, make_context(tmp_path)
    )
    assert output.startswith("HTTP/1.1 200 OK\n")
    assert "Content-Type: text/plain; charset=utf-8" in output
    assert "X-Secret" not in output
    assert output.endswith("\n\nhello there")


async def test_http_request_sends_method_headers_and_body(web_server: str, tmp_path: Path) -> None:
    http = http_request_tool(allow_hosts=["127.0.0.1"])
    arguments = {
        "method": "POST",
        "url": f"{web_server}/echo",
        "headers": {"X-Test": "yes"},
        "body": "payload",
    }
    output = await http.handler(arguments, make_context(tmp_path))
    assert output.endswith("POST yes payload")


async def test_http_request_returns_redirects_without_following(
    web_server: str, tmp_path: Path
) -> None:
    http = http_request_tool(allow_hosts=["127.0.0.1"])
    url = f"{web_server}/redirect"
    output = await http.handler({"method": "GET", "url": url}, make_context(tmp_path))
    assert output.startswith("HTTP/1.1 302 Found\n")
    assert "Location: /hello" in output
    assert "hello there" not in output


async def test_http_request_caps_the_body(web_server: str, tmp_path: Path) -> None:
    http = http_request_tool(allow_hosts=["127.0.0.1"], max_body_bytes=1000)
    output = await http.handler(
        {"method": "GET", "url": f"{web_server}/big"}, make_context(tmp_path)
    )
    assert "a" * 1000 in output
    assert "a" * 1001 not in output
    assert output.endswith("[body truncated after 1000 bytes]")


async def test_http_request_times_out(web_server: str, tmp_path: Path) -> None:
    http = http_request_tool(allow_hosts=["127.0.0.1"], timeout_seconds=0.2)
    with pytest.raises(ToolTimeout) as caught:
        await http.handler({"method": "GET", "url": f"{web_server}/stuck"}, make_context(tmp_path))
    assert caught.value.timeout_seconds == 0.2


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1/", "127.0.0.1, a loopback address"),
        ("http://10.0.0.1/", "10.0.0.1, a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a link-local address"),
        ("http://[::1]:8080/", "::1, a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "a loopback address"),
        ("https://0.0.0.0/", "0.0.0.0, an unspecified address"),
        ("http://localhost/", "localhost resolves to 127.0.0.1, a loopback address"),
        ("file:///etc/passwd", "scheme 'file' is not http or https"),
        ("gopher://example.com/", "scheme 'gopher'"),
    ],
)
async def test_http_request_refuses_what_is_not_public(
    url: str, refused: str, tmp_path: Path
) -> None:
    http = http_request_tool()
    with pytest.raises(ToolRefused, match="refused: .*" + refused.replace(".", r"\.")):
        await http.handler({"method": "GET", "url": url}, make_context(tmp_path))


async def test_http_request_refuses_the_live_local_server_unless_allowed(
    web_server: str, tmp_path: Path
) -> None:
    with pytest.raises(ToolRefused):
        await http_request_tool().handler(
            {"method": "GET", "url": f"{web_server}/hello"}, make_context(tmp_path)
        )
    allowed = http_request_tool(allow_hosts=["LOCALHOST"])
    url = web_server.replace("127.0.0.1", "localhost") + "/hello"
    assert (await allowed.handler({"method": "GET", "url": url}, make_context(tmp_path))).endswith(
        "hello there"
    )


async def test_http_request_refuses_a_name_with_any_private_address(tmp_path: Path) -> None:
    async def split_horizon(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("192.168.1.1")]

    http = http_request_tool(lookup=split_horizon)
    with pytest.raises(ToolRefused, match=r"192\.168\.1\.1, a private address"):
        await http.handler({"method": "GET", "url": "http://mixed.test/"}, make_context(tmp_path))


async def test_http_request_connects_to_the_checked_address_only(
    web_server: str, tmp_path: Path
) -> None:
    lookups: list[str] = []

    async def once(host: str, port: int) -> list[IPAddress]:
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    # The name does not exist anywhere: only a connection pinned to the looked-up
    # address (never a second, system resolution) can reach the server.
    http = http_request_tool(allow_hosts=["pinned.invalid"], lookup=once)
    url = web_server.replace("127.0.0.1", "pinned.invalid") + "/hello"
    output = await http.handler({"method": "GET", "url": url}, make_context(tmp_path))
    assert output.endswith("hello there")
    assert lookups == ["pinned.invalid"]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-global"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_check_address_knows_every_kind(address: str, kind: str | None) -> None:
    assert check_address(ipaddress.ip_address(address)) == kind


def risk_of(tool: Tool, arguments: dict[str, Any]) -> RiskLevel:
    """The risk the gate applies to a call, in a run that has read nothing private."""
    return RiskPolicy().assess(tool, arguments, private_data_read=False).level


def test_http_request_risk_depends_on_the_method() -> None:
    http = http_request_tool()
    assert risk_of(http, {"method": "GET", "url": "https://example.com"}) is RiskLevel.MEDIUM
    assert risk_of(http, {"method": "HEAD", "url": "https://example.com"}) is RiskLevel.MEDIUM
    assert risk_of(http, {"method": "POST", "url": "https://example.com"}) is RiskLevel.HIGH
    assert risk_of(http, {"method": "DELETE", "url": "https://example.com"}) is RiskLevel.HIGH


# --- run_command ----------------------------------------------------------------------------


SANDBOXES = {"sandboxed": CommandSandbox(), "unsandboxed": CommandSandbox(mode="off")}
"""Process handling holds with the sandbox and without it."""


@pytest.fixture(params=list(SANDBOXES))
def sandbox(request: pytest.FixtureRequest) -> CommandSandbox:
    return SANDBOXES[request.param]


async def test_run_command_returns_output_and_exit_code(tmp_path: Path) -> None:
    command = run_command_tool(workspace=tmp_path)
    output = await command.handler(
        {"command": "pwd; echo to-err >&2; exit 3"}, make_context(tmp_path)
    )
    assert output == f"{tmp_path}\nto-err\n\n[exit code 3]"


async def test_run_command_does_not_hand_airlocks_secrets_to_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaks = {
        "ANTHROPIC_API_KEY": "sk-ant-do-not-leak", "SLACK_BOT_TOKEN": "xoxb-do-not-leak",
        "GITHUB_TOKEN": "ghp_do_not_leak", "AIRLOCK_STORE_URL": "redis://:hunter2@cache:6379/0",
        "AIRLOCK_TEST_VISIBLE": "no", "AWS_ACCESS_KEY_ID": "AKIADONOTLEAK",
        "STRIPE_KEY": "sk_live_do_not_leak", "DATABASE_URL": "postgres://u:do-not-leak@db/x",
        "SENTRY_DSN": "https://do-not-leak@sentry.io/1", "DB_PASS": "do-not-leak",
        "MYSQL_PWD": "do-not-leak", "GH_PAT": "github_pat_do_not_leak",
    }  # fmt: skip
    for name, value in leaks.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG_OF_THE_TEAM", "fr")
    monkeypatch.setenv("LC_TIME", "fr_FR.UTF-8")
    # Built from an allow-list: the base set, LC_*, and what the operator names.
    command = run_command_tool(
        workspace=tmp_path, sandbox=CommandSandbox(env_allow=("LANG_OF_THE_TEAM",))
    )
    output = await command.handler({"command": "env"}, make_context(tmp_path))
    assert "LANG_OF_THE_TEAM=fr" in output and "PATH=" in output and "LC_TIME=fr" in output
    for leaked in ("do-not-leak", "do_not_leak", "hunter2", "AIRLOCK_", "DONOTLEAK", *leaks):
        assert leaked not in output
    unlisted = await run_command_tool(workspace=tmp_path).handler(
        {"command": "env"}, make_context(tmp_path)
    )
    assert "LANG_OF_THE_TEAM" not in unlisted


async def test_run_command_needs_its_workspace_folder(tmp_path: Path) -> None:
    command = run_command_tool(workspace=tmp_path)
    with pytest.raises(ToolError, match="cannot start in"):
        await command.handler({"command": "true"}, make_context(tmp_path / "missing"))


async def test_run_command_refuses_a_workspace_that_would_undo_its_sandbox(tmp_path: Path) -> None:
    command = run_command_tool(workspace=Path("/"))
    with pytest.raises(ToolError, match="/ cannot be a workspace"):
        await command.handler({"command": "cat /proc/1/environ"}, make_context(Path("/")))


async def test_run_command_caps_its_output(tmp_path: Path) -> None:
    command = run_command_tool(workspace=tmp_path, max_output_bytes=100)
    output = await command.handler(
        {"command": "head -c 100000 /dev/zero | tr '\\0' a"}, make_context(tmp_path)
    )
    assert output == "a" * 100 + "\n[output truncated after 100 bytes]\n[exit code 0]"


async def test_run_command_times_out_and_stops_the_group(
    tmp_path: Path, sandbox: CommandSandbox
) -> None:
    command = run_command_tool(workspace=tmp_path, timeout_seconds=10, sandbox=sandbox)
    started = time.monotonic()
    call = asyncio.create_task(command.handler(
        {"command": "echo $$ > shell.tmp; mv shell.tmp shell.pid; sleep 5",
         "timeout_seconds": 0.5},
        make_context(tmp_path),
    ))  # fmt: skip
    pid_file = tmp_path / "shell.pid"

    async def shell_started() -> bool:
        return pid_file.exists()

    await eventually(shell_started)
    shell = host_pid(int(pid_file.read_text()), tmp_path)
    with pytest.raises(ToolTimeout) as caught:
        await call
    assert caught.value.timeout_seconds == 0.5
    assert time.monotonic() - started < 3
    assert not process_alive(shell)


async def test_run_command_caps_the_asked_timeout(tmp_path: Path) -> None:
    command = run_command_tool(workspace=tmp_path, timeout_seconds=0.2)
    with pytest.raises(ToolTimeout) as caught:
        await command.handler(
            {"command": "sleep 5", "timeout_seconds": 600}, make_context(tmp_path)
        )
    assert caught.value.timeout_seconds == 0.2


async def test_cancelling_run_command_kills_its_process_group(
    tmp_path: Path, sandbox: CommandSandbox
) -> None:
    command = run_command_tool(workspace=tmp_path, kill_grace_seconds=0.5, sandbox=sandbox)
    script = "sleep 30 & echo $! > child.tmp; mv child.tmp child.pid; wait"
    call = asyncio.create_task(command.handler({"command": script}, make_context(tmp_path)))
    pid_file = tmp_path / "child.pid"

    async def child_started() -> bool:
        return pid_file.exists()

    await eventually(child_started)
    child = host_pid(int(pid_file.read_text()), tmp_path)
    assert process_alive(child)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    async def child_gone() -> bool:
        return not process_alive(child)

    # What is awaited is the kernel ending and reaping the group: stretched with the load.
    await eventually(child_gone, timeout=2, load_scaled=True)


async def test_a_group_that_ignores_sigterm_gets_sigkill(
    tmp_path: Path, sandbox: CommandSandbox
) -> None:
    command = run_command_tool(workspace=tmp_path, kill_grace_seconds=0.1, sandbox=sandbox)
    script = "trap '' TERM; sleep 30 & echo $! > child.tmp; mv child.tmp child.pid; wait"
    call = asyncio.create_task(command.handler({"command": script}, make_context(tmp_path)))
    pid_file = tmp_path / "child.pid"

    async def child_started() -> bool:
        return pid_file.exists()

    await eventually(child_started)
    child = host_pid(int(pid_file.read_text()), tmp_path)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    async def child_gone() -> bool:
        return not process_alive(child)

    # What is awaited is the kernel ending and reaping the group: stretched with the load.
    await eventually(child_gone, timeout=2, load_scaled=True)


async def test_nothing_started_in_the_background_outlives_the_call(
    tmp_path: Path, sandbox: CommandSandbox
) -> None:
    command = run_command_tool(workspace=tmp_path, sandbox=sandbox)
    seconds = marker()
    output = await command.handler(
        {"command": f"sleep {seconds} & echo started"}, make_context(tmp_path)
    )
    assert output.startswith("started")

    async def child_gone() -> bool:
        return not marked(seconds)

    # What is awaited is the kernel ending and reaping the group: stretched with the load.
    await eventually(child_gone, timeout=2, load_scaled=True)


@pytest.mark.parametrize(
    "line",
    [
        "rm -rf build",
        "rm -fr ~/",
        "rm -Rf x",
        "rm -r -f x",
        "rm --recursive --force x",
        "rm -r /",
        "sudo rm -r /*",
        "mkfs.ext4 /dev/sdb1",
        "dd if=/dev/zero of=/dev/sda bs=1M",
        "shutdown -h now",
        "sleep 1 && reboot",
        "psql -c 'drop table users'",
        "mysql -e 'DROP DATABASE prod'",
        ":(){ :|:& };:",
        "cat image > /dev/sda",
        "chmod -R 777 /",
    ],
)
def test_destructive_commands_are_critical(line: str, tmp_path: Path) -> None:
    assert risk_of(run_command_tool(workspace=tmp_path), {"command": line}) is RiskLevel.CRITICAL


@pytest.mark.parametrize(
    "line",
    ["ls -la", "rm notes.txt", "rm -r build", "grep -rf patterns .", "echo dropped tables"],
)
def test_other_commands_are_high(line: str, tmp_path: Path) -> None:
    assert risk_of(run_command_tool(workspace=tmp_path), {"command": line}) is RiskLevel.HIGH


async def test_run_command_preview_shows_command_and_folder(tmp_path: Path) -> None:
    command = run_command_tool(workspace=tmp_path, timeout_seconds=30)
    assert command.preview is not None
    preview = await command.preview({"command": "make test", "timeout_seconds": 5})
    assert preview == f"$ make test\n(in {tmp_path}, timeout 5 s)"


# --- read_file and write_file ---------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace folder with a secret file next to it, outside."""
    (tmp_path / "secret.txt").write_text("top secret\n")
    inside = tmp_path / "workspace"
    inside.mkdir()
    return inside


async def test_files_round_trip_inside_the_workspace(workspace: Path) -> None:
    context = make_context(workspace)
    written = await write_file_tool(workspace=workspace).handler(
        {"path": "notes/today.md", "content": "héllo\n"}, context
    )
    assert written == "wrote 7 bytes to notes/today.md"
    assert (workspace / "notes" / "today.md").read_text() == "héllo\n"
    read = read_file_tool()
    assert await read.handler({"path": "notes/today.md"}, context) == "héllo\n"
    absolute = str(workspace / "notes" / "today.md")
    assert await read.handler({"path": absolute}, context) == "héllo\n"


@pytest.mark.parametrize("path", ["../secret.txt", "../../etc/passwd", "/etc/passwd", "a/../../x"])
async def test_files_refuse_paths_outside_the_workspace(path: str, workspace: Path) -> None:
    context = make_context(workspace)
    with pytest.raises(ToolRefused, match="outside the workspace"):
        await read_file_tool().handler({"path": path}, context)
    with pytest.raises(ToolRefused, match="outside the workspace"):
        await write_file_tool(workspace=workspace).handler({"path": path, "content": "x"}, context)


async def test_files_refuse_a_symlink_pointing_out(workspace: Path) -> None:
    (workspace / "escape").symlink_to(workspace.parent / "secret.txt")
    (workspace / "out").symlink_to(workspace.parent)
    context = make_context(workspace)
    for path in ("escape", "out/secret.txt"):
        with pytest.raises(ToolRefused):
            await read_file_tool().handler({"path": path}, context)
        with pytest.raises(ToolRefused):
            await write_file_tool(workspace=workspace).handler(
                {"path": path, "content": "pwned"}, context
            )
    assert (workspace.parent / "secret.txt").read_text() == "top secret\n"


async def test_a_symlink_inside_the_workspace_is_fine(workspace: Path) -> None:
    (workspace / "real.txt").write_text("real\n")
    (workspace / "alias.txt").symlink_to(workspace / "real.txt")
    assert await read_file_tool().handler({"path": "alias.txt"}, make_context(workspace)) == (
        "real\n"
    )


async def test_files_have_size_caps(workspace: Path) -> None:
    (workspace / "big.txt").write_text("b" * 5000)
    context = make_context(workspace)
    output = await read_file_tool(max_bytes=100).handler({"path": "big.txt"}, context)
    assert output == "b" * 100 + "\n[file truncated after 100 bytes]"
    with pytest.raises(ToolRefused, match="over the 10 limit"):
        await write_file_tool(workspace=workspace, max_bytes=10).handler(
            {"path": "x.txt", "content": "c" * 11}, context
        )
    assert not (workspace / "x.txt").exists()


async def test_reading_what_is_not_there_is_a_tool_error(workspace: Path) -> None:
    with pytest.raises(ToolError, match=r"no file 'missing\.txt'"):
        await read_file_tool().handler({"path": "missing.txt"}, make_context(workspace))


async def test_write_preview_is_a_diff_against_the_current_file(workspace: Path) -> None:
    (workspace / "app.cfg").write_text("debug = false\nport = 80\n")
    preview = write_file_tool(workspace=workspace).preview
    assert preview is not None
    diff = await preview({"path": "app.cfg", "content": "debug = true\nport = 80\n"})
    assert diff.splitlines() == [
        "--- a/app.cfg",
        "+++ b/app.cfg",
        "@@ -1,2 +1,2 @@",
        "-debug = false",
        "+debug = true",
        " port = 80",
    ]
    new = await preview({"path": "new.txt", "content": "fresh"})
    assert new.splitlines() == ["--- /dev/null", "+++ b/new.txt", "@@ -0,0 +1 @@", "+fresh"]
    assert await preview({"path": "app.cfg", "content": "debug = false\nport = 80\n"}) == (
        "app.cfg: no change"
    )
    with pytest.raises(ToolRefused):
        await preview({"path": "../secret.txt", "content": ""})


# --- ask_human and the set ------------------------------------------------------------------


async def test_ask_human_asks_the_channel(tmp_path: Path) -> None:
    channel = AnsweringChannel(answer="use the staging cluster")
    context = make_context(tmp_path, channel)
    ask = ask_human_tool()
    assert ask.risk is RiskLevel.LOW
    answer = await ask.handler({"question": "staging or prod?"}, context)
    assert answer == "use the staging cluster"
    assert channel.questions == [(context.run.id, "staging or prod?")]


async def test_builtin_tools_are_built_from_settings(tmp_path: Path) -> None:
    settings = load_settings(
        env_file=None, data_dir=tmp_path, tool_timeout_seconds=12, approval_ttl_seconds=600
    )
    tools = {each.name: each for each in builtin_tools(settings)}
    assert {name: each.risk for name, each in tools.items()} == {
        "http_request": RiskLevel.MEDIUM,
        "run_command": RiskLevel.HIGH,
        "read_file": RiskLevel.LOW,
        "write_file": RiskLevel.HIGH,
        "ask_human": RiskLevel.LOW,
    }
    for each in tools.values():
        Draft202012Validator.check_schema(each.input_schema)
        assert each.description
    assert tools["ask_human"].timeout_seconds == 600
    preview = tools["run_command"].preview
    assert preview is not None
    assert os.fspath(settings.effective_workspace_dir) in await preview({"command": "ls"})
