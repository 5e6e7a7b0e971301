"""Attacks on ``run_command``: the model's calls, scripted, through the real executor, gate,
store and tool, trying to read airlock's secrets and to leave processes behind.

What must hold: nothing of airlock's environment, data folder, settings file or store reaches
the model, whatever the command does (/proc, ``..``, mount tricks, namespaces, ptrace, raw
devices); ordinary commands keep working; and nothing a command starts outlives its call,
its run, a kill or airlock itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_core.airlock import build_tools
from agent_core.approvals import Authority, DecisionService, Refused, schema_edit_check
from agent_core.audit.trail import Audit
from agent_core.config import Settings, load_settings
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.models import ApprovalStatus, Run, RunStatus, ToolCallSubject
from agent_core.runs.claims import LocalClaims
from agent_core.runs.executor import ExecutorLimits
from agent_core.runs.host import RunHost
from agent_core.runs.orchestrator import Orchestrator
from agent_core.store import Store, open_store
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.channel import RecordingChannel, approve_all
from agent_core.testing.redis_server import free_port
from agent_core.testing.slack_server import SlackStandIn
from agent_core.tools import ToolRegistry
from agent_core.tools.builtins import builtin_tools
from agent_core.tools.processes import end_leftover, running_process
from agent_core.tools.sandbox import HELPER
from tests.agent.conftest import Harness, policy
from tests.e2e.test_serve import clean_env
from tests.processes import marked, marker
from tests.support import airlock_serve, eventually, load_factor, missing

KEY = "sk-ant-api03-attacktestkey"
ENV_SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-LEAKED-anthropic-key",
    "SLACK_BOT_TOKEN": "xoxb-LEAKED-bot-token",
    "SLACK_SIGNING_SECRET": "LEAKED-signing-secret",
    "AWS_ACCESS_KEY_ID": "AKIALEAKEDACCESSKEY",
    "AWS_SECRET_ACCESS_KEY": "LEAKED-aws-secret-access-key",
    "DATABASE_URL": "postgres://app:LEAKED-db-password@db/app",
    "SENTRY_DSN": "https://LEAKED-sentry@sentry.io/1",
    "DB_PASS": "LEAKED-db-pass",
    "MYSQL_PWD": "LEAKED-mysql-pwd",
    "GH_PAT": "github_pat_LEAKED",
    "STRIPE_KEY": "sk_live_LEAKED",
    "AIRLOCK_STORE_URL_SECRET": "LEAKED-airlock-setting",
}
FILE_SECRET = "LEAKED-from-the-env-file"
STORE_SECRET = "LEAKED-from-the-store"
MEMORY_SECRET = "LEAKED-from-the-memory-folder"


@dataclass(kw_only=True)
class World:
    """An airlock deployment on disk: data folder, store, settings file, workspace."""

    base: Path
    data: Path
    workspace: Path
    env_file: Path
    settings: Settings

    @property
    def db(self) -> Path:
        return self.data / "airlock.db"


def deployment(base: Path, layout: str) -> World:
    """``nested``: the workspace inside the data folder (the default); ``flat``: the data
    folder and the settings file inside the workspace."""
    data = base / "data"
    workspace = data / "workspace" if layout == "nested" else base
    (data / "memory").mkdir(parents=True)
    workspace.mkdir(parents=True, exist_ok=True)
    (data / "memory" / "index.faiss").write_text(MEMORY_SECRET)
    env_file = base / ".env"
    env_file.write_text(f"SLACK_APP_TOKEN=xapp-{FILE_SECRET}\n")
    settings = load_settings(env_file, data_dir=data, workspace_dir=workspace)
    return World(base=base, data=data, workspace=workspace, env_file=env_file, settings=settings)


@pytest.fixture(params=["nested-home", "flat-home", "nested-tmp"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """Airlock's state and secrets: in its environment, its data folder (outside /tmp, whose
    sandbox copy is private anyway, and inside it), its settings file and its store."""
    for name, value in ENV_SECRETS.items():
        monkeypatch.setenv(name, value)
    layout, where = request.param.split("-")
    base = tmp_path if where == "tmp" else Path(tempfile.mkdtemp(prefix="airlock-attack-",
                                                                 dir=Path.home()))  # fmt: skip
    try:
        yield deployment(base, layout)
    finally:
        if where != "tmp":
            shutil.rmtree(base)


@pytest.fixture
async def anthropic() -> AsyncIterator[AnthropicStandIn]:
    async with AnthropicStandIn(api_key=KEY) as server:
        yield server


@asynccontextmanager
async def harness(world: World, anthropic: AnthropicStandIn) -> AsyncIterator[Harness]:
    """The real runner, orchestrator, gate, store (in the data folder) and built-in
    ``run_command``, as ``airlock serve`` builds them from the settings; approvals granted."""
    store = await open_store(f"sqlite:///{world.db}")
    llm = AnthropicLLM(api_key=KEY, base_url=anthropic.base_url, planner_model="claude-opus-4-7",
                       executor_model="claude-sonnet-4-6", fast_model="claude-haiku-4-5",
                       max_retries=0, timeout_seconds=30)  # fmt: skip
    registry = ToolRegistry([t for t in builtin_tools(world.settings) if t.name == "run_command"])
    channel = RecordingChannel(decider=approve_all())
    run_policy = policy(executor=ExecutorLimits(max_iterations=40, tool_timeout_seconds=60,
                                                output_max_chars=200_000))  # fmt: skip
    orchestrator = Orchestrator(store=store, llm=llm, tools=registry, channel=channel,
                                policy=run_policy, workspace=world.workspace)  # fmt: skip
    authority = Authority(approvers=["U0APPROVER"], admins=["U0ADMIN"],
                          members_of=channel.members_of)  # fmt: skip
    service = DecisionService(store=store, authority=authority, audit=Audit(store=store),
                              check_edit=schema_edit_check(registry))  # fmt: skip
    channel.service = service
    runner = RunHost(store=store, orchestrator=orchestrator, channel=channel,
                     policy=run_policy.approvals, claims=LocalClaims(store=store))  # fmt: skip
    from agent_core.runs.control import RunControl

    control = RunControl(store=store, authority=authority, audit=Audit(store=store))
    async with llm:
        await runner.start()
        try:
            yield Harness(store=store, channel=channel, orchestrator=orchestrator, runner=runner,
                          service=service, control=control)  # fmt: skip
        finally:
            await runner.stop()
            await store.close()


def plan() -> Reply:
    step = {"id": "s1", "description": "run the commands", "depends_on": [],
            "required_tools": ["run_command"], "risk_level": "high"}  # fmt: skip
    return tool_use_reply("submit_plan", {"subtasks": [step]})


async def outputs_of(world: World, anthropic: AnthropicStandIn, commands: list[str]) -> list[str]:
    """What the model got back for each command, run one after the other in one run."""
    anthropic.enqueue(plan(), *(tool_use_reply("run_command", {"command": c}) for c in commands),
                      text_reply("done"))  # fmt: skip
    async with harness(world, anthropic) as h:
        secret_run = Run(goal=f"rotate the key {STORE_SECRET}", requester="U0OTHER")
        await h.store.create_run(secret_run)
        done = await h.run("look around")
    assert done.status is RunStatus.COMPLETED, done.error
    answers = [r.tool_results() for r in anthropic.message_requests()[2:]]
    assert len(answers) == len(commands)
    return [str(blocks[0]["content"]) for blocks in answers]


def secrets(world: World) -> list[str]:
    return [*ENV_SECRETS.values(), FILE_SECRET, STORE_SECRET, MEMORY_SECRET]


def assert_nothing_leaked(world: World, outputs: list[str]) -> None:
    for command, output in zip(ATTACKS, outputs, strict=True):
        for secret in secrets(world):
            assert secret not in output, f"{command!r} read {secret!r}:\n{output}"


NESTED_PYTHON = """python3 - <<'EOF'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print("unshare", libc.unshare(0x10000000 | 0x00020000 | 0x40000000), ctypes.get_errno())
for target in ("@data@", "@env@", "/proc", "/"):
    print("umount", target, libc.umount2(target.encode(), 2), ctypes.get_errno())
os.makedirs("/tmp/reveal", exist_ok=True)
print("bind", libc.mount(b"@base@", b"/tmp/reveal", None, 0x1000, None), ctypes.get_errno())
print("rbind", libc.mount(b"@base@", b"/tmp/reveal", None, 0x5000, None), ctypes.get_errno())
print("rw", libc.mount(None, b"/", None, 0x1020, None), ctypes.get_errno())
print("ptrace", libc.ptrace(16, os.getppid(), 0, 0), ctypes.get_errno())
for path in ("/tmp/reveal/.env", "/tmp/reveal/data/airlock.db", "@db@", "@env@"):
    try:
        print(open(path, "rb").read())
    except OSError as error:
        print(path, error)
EOF"""

ATTACKS = {
    "the parent's environment": "tr '\\0' '\\n' < /proc/$PPID/environ; cat /proc/$PPID/cmdline",
    "every process's environment": (
        'for f in /proc/[0-9]*/environ /proc/[0-9]*/task/*/environ; do echo "== $f";'
        " tr '\\0' '\\n' < \"$f\"; done"
    ),
    "pid 1": (
        "ls -la /proc/1/ /proc/1/fd/; cat /proc/1/environ /proc/1/maps | head -20;"
        " readlink /proc/1/root /proc/1/cwd /proc/1/exe; tr '\\0' ' ' < /proc/1/cmdline"
    ),
    "airlock by its pid": (
        "cat /proc/@pid@/environ /proc/@pid@/cmdline /proc/@pid@/task/*/environ;"
        " python3 -c \"print(open('/proc/@pid@/mem', 'rb').read(64))\"; ls /proc/@pid@/fd"
    ),
    "files by absolute path": "cat @db@ @db@-wal @db@-shm @env@ @data@/memory/index.faiss",
    "files by ..": (
        "cat ../airlock.db ../airlock.db-wal ../../.env ../.env .env data/airlock.db;"
        " ls -la .. ../..; grep -r LEAKED @base@ @data@ 2>&1 | head -20"
    ),
    "mount and umount": (  # each mount that works is undone: this must be safe to run unboxed
        "umount @data@; umount -l @data@; umount @env@; mount -o remount,rw /;"
        " mkdir -p /tmp/m; mount --bind @base@ /tmp/m && { cat /tmp/m/.env; umount /tmp/m; };"
        " mount -t proc proc /tmp/m && { cat /tmp/m/*/environ; umount /tmp/m; }; cat @db@ @env@"
    ),
    "nsenter and unshare": (
        "nsenter -t 1 -a cat @db@; nsenter -t 1 -m -p cat @env@;"
        " unshare -m cat @db@; unshare -Urm sh -c 'umount -l @data@; cat @db@';"
        " unshare -Um sh -c 'umount -l @data@; cat @db@ @env@';"
        " unshare -Urmpf --mount-proc sh -c 'cat /proc/*/environ'"
    ),
    "a namespace of its own, by syscalls": NESTED_PYTHON,
    "ptrace": (  # the shell's parent: airlock itself, were there no sandbox
        "gdb -p $PPID -batch -ex 'x/400s **(char ***)&environ' 2>&1 | tail -400;"
        " timeout 2 strace -p $PPID 2>&1 | head -3"
    ),
    "open descriptors": "ls -la /proc/self/fd; ls -la /proc/$$/fd",
    "raw block devices": (
        "ls /dev; for d in $(ls /sys/class/block); do"
        " head -c 1 /dev/$d > /dev/null 2>&1 && echo OPENED $d; done"
    ),
}
"""Each attack, one command each; ``@name@`` is filled in with the deployment's paths."""


async def test_no_command_reads_airlocks_environment_data_settings_or_store(
    world: World, anthropic: AnthropicStandIn
) -> None:
    places = {"db": world.db, "env": world.env_file, "data": world.data, "base": world.base,
              "pid": os.getpid()}  # fmt: skip
    commands = list(ATTACKS.values())
    for name, value in places.items():
        commands = [c.replace(f"@{name}@", str(value)) for c in commands]
    outputs = await outputs_of(world, anthropic, commands)
    assert_nothing_leaked(world, outputs)
    by_name = dict(zip(ATTACKS, outputs, strict=True))
    assert "OPENED" not in by_name["raw block devices"]
    assert "[exit code" in by_name["pid 1"]  # the commands ran


async def test_a_command_cannot_escalate_through_what_root_owns(
    world: World, anthropic: AnthropicStandIn
) -> None:
    """A command that runs as root keeps no capability: what root may write on the host (the
    system's files, the kernel's knobs, a root-only socket) stays out of its reach. (Each
    attempt changes nothing even where it succeeds, and is undone.)"""
    name = f"airlock-attack-{os.getpid()}"
    planted = [Path(folder) / name for folder in ("/etc", "/usr", "/root", str(world.data))]
    sock = Path("/run") / f"{name}.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock))
    listener.listen()
    try:
        outputs = await outputs_of(world, anthropic, [
            f"touch {' '.join(map(str, planted))} && echo PLANTED;"
            " cat /proc/sys/kernel/core_pattern > /tmp/pattern;"
            " cat /tmp/pattern > /proc/sys/kernel/core_pattern && echo KERNEL-WRITTEN",
            f"python3 -c \"import socket; s = socket.socket(socket.AF_UNIX);"
            f" s.connect('{sock}'); print('CONNECTED')\"; ls -la /run",
        ])  # fmt: skip
    finally:
        listener.close()
        sock.unlink()
        planted_now = [path for path in planted if path.exists()]
        for path in planted_now:
            path.unlink()
    assert "PLANTED" not in outputs[0] and not planted_now
    assert "KERNEL-WRITTEN" not in outputs[0]
    assert "CONNECTED" not in outputs[1]


async def test_ordinary_commands_keep_working(world: World, anthropic: AnthropicStandIn) -> None:
    outputs = await outputs_of(world, anthropic, [
        "ls -la && echo hi && git --version && python3 -c 'print(6 * 7)'",
        "echo made > made-here.txt && mkdir -p sub/dir && cd sub/dir && pwd"
        " && cat ../../made-here.txt",
        "ls /usr/bin | grep -c . && echo scratch > /tmp/scratch && cat /tmp/scratch && nproc",
        "echo to-stderr >&2; exit 3",
    ])  # fmt: skip
    assert "hi\n" in outputs[0] and "git version" in outputs[0] and "42" in outputs[0]
    assert f"{world.workspace}/sub/dir\nmade" in outputs[1]
    assert (world.workspace / "made-here.txt").read_text() == "made\n"
    assert "scratch" in outputs[2] and "[exit code 0]" in outputs[2]
    assert "to-stderr" in outputs[3] and "[exit code 3]" in outputs[3]


async def test_fifty_megabytes_of_output_are_capped(
    world: World, anthropic: AnthropicStandIn
) -> None:
    [output] = await outputs_of(world, anthropic, ["head -c 50000000 /dev/zero | tr '\\0' a"])
    assert "[output truncated after 20000 bytes]" in output and "[exit code 0]" in output


# --- nothing outlives its call, its run, a kill or airlock ------------------------------------


@pytest.fixture
def one_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    for name, value in ENV_SECRETS.items():
        monkeypatch.setenv(name, value)
    return deployment(tmp_path, "nested")


def escapes(seconds: str) -> str:
    """A command that leaves ``sleep <seconds>`` behind three ways: in a session of its own
    (``setsid``), double-forked out of its shell, and as a plain background job."""
    return (
        f"setsid sh -c 'sleep {seconds} & echo $! > escaped.pid; wait' > /dev/null 2>&1 &"
        " until [ -s escaped.pid ]; do sleep 0.01; done;"
        f" (sleep {seconds} &); sleep {seconds} & echo started"
    )


async def all_gone(seconds: str, timeout: float = 10) -> None:
    async def gone() -> bool:
        return not marked(seconds)

    await eventually(gone, timeout=timeout)


async def test_what_a_command_leaves_behind_is_gone_when_its_call_returns(
    one_world: World, anthropic: AnthropicStandIn
) -> None:
    seconds = marker()
    try:
        [output] = await outputs_of(one_world, anthropic, [escapes(seconds)])
        assert output.startswith("<tool_output") and "started" in output
        await all_gone(seconds, timeout=5)
    finally:
        kill_marked(seconds)


async def test_what_a_command_leaves_behind_is_gone_when_its_run_is_killed(
    one_world: World, anthropic: AnthropicStandIn
) -> None:
    seconds = marker()
    anthropic.enqueue(plan(), tool_use_reply("run_command", {"command": escapes(seconds) +
                                                             f"; sleep {seconds}"}))  # fmt: skip
    try:
        async with harness(one_world, anthropic) as h:
            run = await h.start("wait a while")

            async def escaped() -> bool:
                return len(marked(seconds)) == 4

            await eventually(escaped, timeout=15)
            assert not isinstance(await h.control.kill(run.id, by="U0ADMIN"), Refused)
            assert (await h.finished(run.id)).status is RunStatus.KILLED
            await all_gone(seconds, timeout=5)
    finally:
        kill_marked(seconds)


def kill_marked(seconds: str) -> None:
    """Cleans up after a test that failed: ``sleep <seconds>`` is only ever ours."""
    for pid in marked(seconds):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def airlock_env(server: AnthropicStandIn, data: Path, **more: str) -> dict[str, str]:
    return clean_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.base_url,
                     AIRLOCK_DATA_DIR=str(data), AIRLOCK_LLM_MAX_RETRIES="0",
                     AIRLOCK_SIGNAL_POLL_SECONDS="0.05", COLUMNS="400", **more)  # fmt: skip


@asynccontextmanager
async def airlock(*args: str, env: dict[str, str], cwd: Path) -> AsyncIterator[Process]:
    """A real ``airlock`` process, killed at the end if it still runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def finished(process: Process) -> tuple[int, str]:
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


async def decide(verb: str, target: str, env: dict[str, str], cwd: Path) -> None:
    async with airlock(verb, target, env=env, cwd=cwd) as process:
        code, output = await finished(process)
    assert code == 0, output


async def pending(store: Store) -> str:
    """The id of the one pending approval, once there is one."""
    found: list[str] = []

    async def one() -> bool:
        found[:] = [a.id for a in await store.list_pending_approvals()]
        return len(found) == 1

    await eventually(one, timeout=30)
    return found[0]


async def opened(db: Path) -> Store:
    async def exists() -> bool:
        return await asyncio.to_thread(db.exists)

    await eventually(exists, timeout=30)
    return await open_store(f"sqlite:///{db}")


async def test_sigkill_of_airlock_ends_the_command_and_the_resume_says_so(
    tmp_path: Path,
) -> None:
    seconds = marker()
    data = tmp_path / "data"
    command = (f"if [ -f started ]; then echo second attempt; else touch started;"
               f" {escapes(seconds)}; sleep {seconds}; fi")  # fmt: skip
    script = [plan(), tool_use_reply("run_command", {"command": command}), text_reply("done")]
    store: Store | None = None
    try:
        async with AnthropicStandIn(api_key=KEY, script=script) as server:
            env = airlock_env(server, data)
            async with airlock("run", "migrate", env=env, cwd=tmp_path) as first:
                store = await opened(data / "airlock.db")
                await decide("approve", await pending(store), env, tmp_path)  # the plan
                call = await pending(store)
                await decide("approve", call, env, tmp_path)

                async def escaped() -> bool:
                    return len(marked(seconds)) == 4

                await eventually(escaped, timeout=30)
                first.send_signal(signal.SIGKILL)
                await first.wait()
            await all_gone(seconds, timeout=10)
            [run] = await store.list_runs()

            async with airlock("run", "--resume", run.id, env=env, cwd=tmp_path) as second:
                again = await store.get_approval(await pending(store))
                assert again.id != call
                assert isinstance(again.subject, ToolCallSubject)
                assert again.subject.possibly_partial and again.subject.earlier_copy_ended is True
                assert (await store.get_approval(call)).status is ApprovalStatus.APPROVED
                await decide("approve", again.id, env, tmp_path)
                code, output = await finished(second)
            assert code == 0, output
            assert "The earlier copy was confirmed ended" in output  # the terminal's prompt
            kinds = [e.kind for e in await store.list_audit(run.id)]
            assert kinds.count("tool_process_started") == 2
            assert "second attempt" in str(server.message_requests()[-1].tool_results())
    finally:
        kill_marked(seconds)
        if store is not None:
            await store.close()


async def test_airlock_kill_from_another_process_ends_what_the_command_left(
    tmp_path: Path,
) -> None:
    seconds = marker()
    data = tmp_path / "data"
    command = f"{escapes(seconds)}; sleep {seconds}"
    script = [plan(), tool_use_reply("run_command", {"command": command})]
    store: Store | None = None
    try:
        async with AnthropicStandIn(api_key=KEY, script=script) as server:
            env = airlock_env(server, data)
            async with airlock("run", "--yes", "wait", env=env, cwd=tmp_path) as running:
                store = await opened(data / "airlock.db")

                async def escaped() -> bool:
                    return len(marked(seconds)) == 4

                await eventually(escaped, timeout=30)
                [run] = await store.list_runs()
                await decide("kill", run.id, env, tmp_path)
                code, output = await finished(running)
            assert code == 1, output
            assert (await store.get_run(run.id)).status is RunStatus.KILLED
            await all_gone(seconds, timeout=10)
    finally:
        kill_marked(seconds)
        if store is not None:
            await store.close()


# --- where the sandbox cannot start -------------------------------------------------------


def failing_launcher(folder: Path) -> Path:
    """An interpreter for the sandbox helper that fails as a machine without namespaces does."""
    launcher = folder / "no-namespaces-python"
    launcher.write_text("#!/bin/sh\necho 'airlock sandbox: unshare: Operation not permitted' >&2\n"
                        "exit 125\n")  # fmt: skip
    launcher.chmod(0o755)
    return launcher


async def test_where_the_sandbox_cannot_start_run_command_is_refused(
    one_world: World, anthropic: AnthropicStandIn, tmp_path: Path
) -> None:
    settings = one_world.settings.model_copy(
        update={"command_sandbox_python": failing_launcher(tmp_path)}
    )
    lines: list[str] = []
    async with AsyncExitStack() as stack:
        registry = await build_tools(settings, stack, report=lines.append)
    [line] = lines  # one clear line at start
    assert "run_command is unavailable" in line and "Operation not permitted" in line
    assert "AIRLOCK_COMMAND_SANDBOX=off" in line
    described = registry.get("run_command")
    assert described is not None and described.description.startswith("UNAVAILABLE")

    world = World(base=one_world.base, data=one_world.data, workspace=one_world.workspace,
                  env_file=one_world.env_file, settings=settings)  # fmt: skip
    [answer] = await outputs_of(world, anthropic, [f"cat {one_world.env_file}"])
    assert answer.startswith("run_command: unavailable on this machine, nothing was run")
    assert FILE_SECRET not in answer


async def test_airlock_run_says_at_start_that_commands_are_refused(tmp_path: Path) -> None:
    script = [plan()]
    async with AnthropicStandIn(api_key=KEY, script=script) as server:
        env = airlock_env(
            server,
            tmp_path / "data",
            AIRLOCK_COMMAND_SANDBOX_PYTHON=str(failing_launcher(tmp_path)),
        )
        async with airlock("run", "--dry-run", "look", env=env, cwd=tmp_path) as process:
            code, output = await finished(process)
    assert code == 0, output
    said = [line for line in output.splitlines() if "run_command is unavailable" in line]
    assert len(said) == 1 and "unshare: Operation not permitted" in said[0]


async def test_with_the_sandbox_turned_off_commands_run_as_before_with_a_warning(
    one_world: World, anthropic: AnthropicStandIn
) -> None:
    settings = one_world.settings.model_copy(update={"command_sandbox": "off"})
    lines: list[str] = []
    async with AsyncExitStack() as stack:
        await build_tools(settings, stack, report=lines.append)
    [line] = lines
    assert line.startswith("WARNING: run_command runs commands WITHOUT a sandbox")
    world = World(base=one_world.base, data=one_world.data, workspace=one_world.workspace,
                  env_file=one_world.env_file, settings=settings)  # fmt: skip
    [output] = await outputs_of(world, anthropic, [f"cat {one_world.env_file}; env"])
    assert FILE_SECRET in output  # what the sandbox is for
    assert ENV_SECRETS["ANTHROPIC_API_KEY"] not in output  # the environment is still an allow-list


# --- airlock not running as root ----------------------------------------------------------

NOBODY = 65534


def unprivileged_deployment(base: Path) -> tuple[Path, Path, Path]:
    """The helper, a data folder and a workspace another user can reach: (helper, data,
    workspace)."""
    base.chmod(0o755)
    helper = base / "_sandbox_init.py"
    shutil.copy(HELPER, helper)
    data = base / "data"
    workspace = data / "workspace"
    workspace.mkdir(parents=True)
    workspace.chmod(0o777)
    (data / "airlock.db").write_text(STORE_SECRET)
    return helper, data, workspace


async def test_the_sandbox_holds_for_an_airlock_that_is_not_root() -> None:
    """A user namespace gives an unprivileged airlock the same sandbox (run here as nobody)."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or python is None:
        missing("needs root (to become another user) and a system python3")
        return
    base = Path(tempfile.mkdtemp(prefix="airlock-nobody-"))
    try:
        helper, data, workspace = unprivileged_deployment(base)
        command = ("id -u; cat ../airlock.db; ls ..; echo made > f; cat f; ps -e | wc -l;"
                   " grep CapEff /proc/self/status")  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            python, "-I", "-S", str(helper), str(os.getpid()), str(workspace), command,
            str(data), cwd=workspace, env={"PATH": "/usr/bin:/bin"}, user=NOBODY,
            group=NOBODY, extra_groups=[], stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        async with asyncio.timeout(30):
            out, _ = await process.communicate()
        output = out.decode()
        assert process.returncode == 0, output
        assert STORE_SECRET not in output and f"{NOBODY}\n" in output
        assert "No such file" in output and "made\n" in output
        assert "CapEff:\t0000000000000000" in output
        # ps's header, the sandbox's init, the shell, ps and wc: nothing of the host
        assert output.split("made\n")[1].split()[0] == "5"
    finally:
        shutil.rmtree(base)


def test_the_approver_is_told_whether_the_earlier_copy_was_confirmed_ended() -> None:
    subject = ToolCallSubject(subtask_id="s1", tool="run_command", arguments={"command": "x"},
                              possibly_partial=True)  # fmt: skip
    assert subject.partial_note == (
        "Asked again: an earlier attempt may have run partly before a restart."
    )
    ended = subject.model_copy(update={"earlier_copy_ended": True}).partial_note
    assert "The earlier copy was confirmed ended" in ended
    unknown = subject.model_copy(update={"earlier_copy_ended": False}).partial_note
    assert "could NOT confirm that the earlier copy ended" in unknown


async def test_airlock_serve_says_at_start_that_commands_are_refused(tmp_path: Path) -> None:
    port = free_port()
    async with SlackStandIn(bot_token="xoxb-attack") as slack:
        env = clean_env(SLACK_BOT_TOKEN="xoxb-attack", SLACK_SIGNING_SECRET="attack-secret",
                        SLACK_API_URL=slack.api_url, ANTHROPIC_API_KEY=KEY,
                        AIRLOCK_DATA_DIR=str(tmp_path / "data"), AIRLOCK_PORT=str(port),
                        AIRLOCK_COMMAND_SANDBOX_PYTHON=str(failing_launcher(tmp_path)))  # fmt: skip
        async with airlock_serve(env, tmp_path, port, stderr=asyncio.subprocess.PIPE) as served:
            served.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                _, err = await served.communicate()
    said = [line for line in err.decode().splitlines() if "run_command is unavailable" in line]
    assert len(said) == 1 and "unshare: Operation not permitted" in said[0]


async def test_a_resume_ends_a_copy_that_is_still_running_before_it_asks_again(
    tmp_path: Path,
) -> None:
    """The first airlock is frozen (SIGSTOP), not dead, so its command goes on: the process
    that resumes the run (once the frozen one's lease on it has lapsed) must end it, then ask
    again saying so."""
    seconds = marker()
    data = tmp_path / "data"
    command = (f"if [ -f started ]; then echo second attempt; else touch started;"
               f" {escapes(seconds)}; sleep {seconds}; fi")  # fmt: skip
    script = [plan(), tool_use_reply("run_command", {"command": command}), text_reply("done")]
    store: Store | None = None
    try:
        async with AnthropicStandIn(api_key=KEY, script=script) as server:
            # A frozen holder is not a dead one: its lease holds until it lapses.
            lease = str(round(3 * load_factor()))
            env = airlock_env(server, data, AIRLOCK_LEASE_SECONDS=lease)
            async with airlock("run", "migrate", env=env, cwd=tmp_path) as first:
                store = await opened(data / "airlock.db")
                await decide("approve", await pending(store), env, tmp_path)  # the plan
                await decide("approve", await pending(store), env, tmp_path)  # the call

                async def escaped() -> bool:
                    return len(marked(seconds)) == 4

                await eventually(escaped, timeout=30)
                first.send_signal(signal.SIGSTOP)
                [run] = await store.list_runs()
                resume = ("run", "--resume", run.id, "--wait")
                async with airlock(*resume, env=env, cwd=tmp_path) as second:
                    again = await store.get_approval(await pending(store))
                    assert marked(seconds) == []  # ended before anyone was asked
                    assert isinstance(again.subject, ToolCallSubject)
                    assert again.subject.earlier_copy_ended is True
                    await decide("approve", again.id, env, tmp_path)
                    code, output = await finished(second)
                assert code == 0, output
    finally:
        kill_marked(seconds)
        if store is not None:
            await store.close()


def test_a_record_of_another_process_or_machine_ends_nothing() -> None:
    """A pid reused by a new process, or a record from another machine, is never signalled."""
    bystander = subprocess.Popen(["sleep", marker()], start_new_session=True)
    try:
        record = running_process(bystander.pid, sandboxed=True)
        assert record is not None
        reused = record.model_copy(update={"started": record.started - 1})
        elsewhere = record.model_copy(update={"host": record.host + "-elsewhere"})
        assert asyncio.run(end_leftover(reused)) is True  # its group ended long ago
        assert asyncio.run(end_leftover(elsewhere)) is False  # cannot be checked from here
        assert bystander.poll() is None  # and the process that has the pid now lives on
        assert asyncio.run(end_leftover(record)) is True
        assert bystander.wait(timeout=5) == -signal.SIGKILL
    finally:
        bystander.kill()
        bystander.wait()
