"""Scale-out benchmark: goals per second through front ends and 1, 2, 4 workers on one Redis.

    python -m bench.scale [--goals 200] [--latency 0.05] [--clicks 30] [--slots 16]

Every airlock process is a real one (``python -m bot serve --no-worker`` and
``python -m bot worker``) on a fresh ``redis-server``; the Slack and Anthropic stand-ins each
run in a process of their own, so none of them competes with the benchmark process.

- **Throughput.** ``--goals`` signed app mentions go to two front ends (alternating, 8 in
  flight); 1, 2 and 4 workers with ``--slots`` run slots each (AIRLOCK_MAX_CONCURRENT_RUNS)
  execute them. Each goal is plan -> one LOW ``write_file`` call -> done, every model call
  taking ``--latency`` seconds. Goals per second counts from the first post to the last
  run's final save (its ``updated_at``); the ratio is against one worker.
- **Approval resume across processes.** ``--clicks`` goals each wait on a HIGH
  ``run_command``; each Approve click (signed ``block_actions``, one at a time) is timed from
  its HTTP 200 to the ``tool_call`` audit event the resumed run writes. Once with a front end
  (``serve --no-worker``) and a worker, and, as the baseline on the same Redis, with one
  ``airlock serve`` doing both.

Per-user and daily limits are off, memory is off (no embedding model in any process). Each
configuration's processes get SIGTERM at its end; their exit times and the warnings and
errors in their logs (kept in a folder the output names) are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from agent_core.audit.chain import AuditKey
from agent_core.models import Run
from agent_core.store import Store, open_store
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.redis_server import RedisServer, free_port
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackStandIn

REPO = Path(__file__).resolve().parents[1]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-airlock-bench"
KEY = "sk-ant-bench"
AUDIT_KEY = AuditKey.generate()
"""This run's audit key: every process of the cluster seals the trail with it."""
MENTION: dict[str, Any] = load_json_payload("app_mention.json")
CLICK: dict[str, Any] = load_json_payload("block_actions.json")
APPROVER: str = CLICK["user"]["id"]
NEEDS_APPROVAL = "needs-approval"
WORKER_COUNTS = (1, 2, 4)
FRONT_ENDS = 2
IN_FLIGHT = 8
"""Mentions posted at once (Slack delivers events concurrently too)."""
SHUTDOWN_GRACE = 5.0
_TOKEN = re.compile(r"\bgoal-[0-9a-f]{16}\b")
_OURS = ("SLACK_", "ANTHROPIC_", "AIRLOCK_")
_ACCESS_LOG = '"logger": "aiohttp.access"'


# --- the stand-ins, each in a process of its own ---------------------------------------------


def answer(request: RecordedRequest) -> Reply:
    """The model, from the conversation alone: plan one LOW subtask, call one tool, finish.

    The tool is ``write_file`` (LOW here) or, for a goal marked ``needs-approval``,
    ``run_command`` (HIGH).
    """
    users = [m for m in request.messages if m.get("role") == "user"]
    first = json.dumps(users[0].get("content")) if users else ""
    found = _TOKEN.search(first)
    token = found.group(0) if found else "goal-unknown"
    if ((request.body or {}).get("tool_choice") or {}).get("name") == "submit_plan":
        subtask = {"id": "s1", "description": f"do {token}", "required_tools": [],
                   "depends_on": [], "risk_level": "low"}  # fmt: skip
        return tool_use_reply("submit_plan", {"subtasks": [subtask]})
    if request.tool_results():
        return text_reply(f"done {token}")
    if NEEDS_APPROVAL in first:
        return tool_use_reply("run_command", {"command": f"echo {token} >> runs/{token}.cmd"})
    return tool_use_reply("write_file", {"path": f"runs/{token}.txt", "content": token})


async def serve_standin(kind: str, latency: float) -> None:
    """Serve one stand-in, print its URL, stop when stdin closes."""
    async with AsyncExitStack() as stack:
        if kind == "slack":
            slack = await stack.enter_async_context(SlackStandIn(bot_token=TOKEN))
            url = slack.api_url
        else:
            model = await stack.enter_async_context(
                AnthropicStandIn(api_key=KEY, default=answer, latency=latency,
                                 check_on_exit=False)
            )  # fmt: skip
            url = model.base_url
        print(url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@asynccontextmanager
async def standin(kind: str, latency: float) -> AsyncIterator[tuple[str, int]]:
    """A stand-in in its own process; yields its URL and process id."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scale", "--standin", kind, "--latency", str(latency),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        yield (await process.stdout.readline()).decode().strip(), process.pid
    finally:
        process.stdin.close()
        await process.wait()


# --- airlock processes -----------------------------------------------------------------------


@dataclass(kw_only=True)
class Node:
    name: str
    port: int
    log: Path
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(kw_only=True)
class Stopped:
    """How the processes of one configuration ended, and what their logs say."""

    config: str
    exits: list[tuple[str, float, int | None]] = field(default_factory=list)
    """Name, seconds from SIGTERM to exit (inf if killed), exit code."""
    warnings: Counter[str] = field(default_factory=Counter)
    """Message -> how many WARNING/ERROR/CRITICAL lines in all the logs."""


@dataclass(kw_only=True)
class Cluster:
    """Airlock processes sharing one environment, on one Redis."""

    redis_url: str
    slack_url: str
    model_url: str
    folder: Path
    slots: int
    config: str
    nodes: list[Node] = field(default_factory=list)
    http: aiohttp.ClientSession = field(default_factory=aiohttp.ClientSession)
    signer: SlackRequestSigner = field(default_factory=lambda: SlackRequestSigner(SECRET))
    serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def env(self, port: int) -> dict[str, str]:
        data = self.folder / "data"
        (data / "workspace" / "runs").mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
        return base | {
            "PYTHONPATH": str(REPO), "AIRLOCK_MEMORY_ENABLED": "false",
            "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": self.slack_url, "ANTHROPIC_API_KEY": KEY,
            "ANTHROPIC_BASE_URL": self.model_url, "AIRLOCK_STORE_URL": self.redis_url,
            "AIRLOCK_DATA_DIR": str(data), "AIRLOCK_APPROVERS": APPROVER,
            "AIRLOCK_MAX_CONCURRENT_RUNS": str(self.slots),
            "AIRLOCK_SHUTDOWN_GRACE_SECONDS": f"{SHUTDOWN_GRACE:g}",
            # Hundreds of runs from one requester: no per-user or daily limit may refuse one.
            "AIRLOCK_RUNS_PER_USER_PER_HOUR": "0", "AIRLOCK_DAILY_BUDGET_USD": "0",
            "AIRLOCK_USER_DAILY_BUDGET_USD": "0",
            "AIRLOCK_TOOL_RISKS": json.dumps({"write_file": "low"}),
            "AIRLOCK_PORT": str(port), "AIRLOCK_AUDIT_KEY": AUDIT_KEY,
        }  # fmt: skip

    async def spawn(self, name: str, *args: str) -> Node:
        port = free_port()
        log_path = self.folder / f"{self.config}-{name}.log"
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", *args, cwd=self.folder, env=self.env(port),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        node = Node(name=name, port=port, log=log_path, process=process)
        self.nodes.append(node)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited at start-up; see {log_path}")
            try:
                async with self.http.get(f"{node.url}/healthz") as response:
                    if response.status == 200:
                        return node
            except aiohttp.ClientError:
                pass
            # A process gives no readiness event: poll until the deadline.
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{name} never answered /healthz; see {log_path}")

    async def post_goal(self, front_end: Node, *, needs_approval: bool = False) -> None:
        serial = next(self.serial)
        token = f"goal-{uuid.uuid4().hex[:16]}"
        text = f"write the note {token}" + (f" {NEEDS_APPROVAL}" if needs_approval else "")
        ts = f"{1_700_000_000 + serial}.{serial:06d}"
        body = copy.deepcopy(MENTION)
        body.update(event_id=f"EvBENCH{serial:06d}{token[-6:].upper()}",
                    event_time=int(time.time()))  # fmt: skip
        body["event"].update(text=f"<@{body['authed_users'][0]}> {text}", ts=ts, event_ts=ts,
                             client_msg_id=str(uuid.uuid4()))  # fmt: skip
        status, reply = await post_to_bot(
            f"{front_end.url}/slack/events", self.signer.event(body), session=self.http
        )
        if status != 200:
            raise RuntimeError(f"{front_end.name} answered {status}: {reply}")

    async def click_approve(self, front_end: Node, approval_id: str) -> None:
        body = copy.deepcopy(CLICK)
        body["user"]["id"] = APPROVER
        body["container"].update(channel_id=MENTION["event"]["channel"],
                                 message_ts="1700000000.000001", is_ephemeral=False)  # fmt: skip
        body["actions"][0].update(
            action_id="airlock_approve", block_id=f"airlock:{approval_id}", value=approval_id,
            text={"type": "plain_text", "text": "Approve"},
        )  # fmt: skip
        status, reply = await post_to_bot(
            f"{front_end.url}/slack/events", self.signer.interaction(body), session=self.http
        )
        if status != 200:
            raise RuntimeError(f"{front_end.name} answered the click with {status}: {reply}")

    async def stop(self) -> Stopped:
        """SIGTERM every process at once; how long each took to exit; their log warnings."""
        stopped = Stopped(config=self.config)

        async def one(node: Node) -> tuple[str, float, int | None]:
            t0 = time.monotonic()
            node.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(SHUTDOWN_GRACE + 10):
                    code = await node.process.wait()
                return node.name, time.monotonic() - t0, code
            except TimeoutError:
                node.process.kill()
                await node.process.wait()
                return node.name, float("inf"), None

        stopped.exits = list(await asyncio.gather(*(one(n) for n in self.nodes if
                                                    n.process.returncode is None)))  # fmt: skip
        await self.http.close()
        for node in self.nodes:
            stopped.warnings.update(log_warnings(node.log))
        return stopped


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds all processes on the machine have used (every CPU), from /proc/stat."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def log_warnings(path: Path) -> Counter[str]:
    """WARNING and worse lines of a JSON log, by message."""
    found: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if _ACCESS_LOG in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if "Traceback" in line or "Error" in line:
                found[f"(not JSON) {line[:100]}"] += 1
            continue
        if isinstance(record, dict) and record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            found[f"{record['level']}: {record.get('message', '')}"[:120]] += 1
    return found


async def all_final(store: Store, count: int, timeout: float) -> list[Run]:
    """Poll the store until it holds ``count`` runs, all final."""
    deadline = time.monotonic() + timeout
    runs: list[Run] = []
    while time.monotonic() < deadline:
        runs = await store.list_runs(limit=100_000)
        if len(runs) >= count and all(r.status.is_final for r in runs):
            return runs
        # Runs advance in other processes: polling is the only way to see them.
        await asyncio.sleep(0.2)
    statuses = Counter(str(r.status) for r in runs)
    raise RuntimeError(f"not all {count} runs final in {timeout:g}s: {dict(statuses)}")


# --- the measures ----------------------------------------------------------------------------


@dataclass(kw_only=True)
class Throughput:
    workers: int
    goals: int
    seconds: float
    posting: float
    """Seconds from the first post to the last mention's HTTP 200."""
    statuses: Counter[str]
    cpu: dict[str, float]
    """Role (front ends, workers, redis, stand-ins, bench) -> CPU seconds, from the first
    post to the poll that saw every run final."""
    observed: float
    """Seconds from the first post to that poll."""
    machine: float
    """CPU seconds the whole machine used meanwhile (other work on it included)."""

    @property
    def per_second(self) -> float:
        return self.goals / self.seconds


@dataclass(kw_only=True)
class Result:
    throughput: list[Throughput] = field(default_factory=list)
    resume: dict[str, list[float]] = field(default_factory=dict)
    """Configuration -> click-to-tool-start samples, ms."""
    stopped: list[Stopped] = field(default_factory=list)


async def throughput(
    urls: tuple[str, str],
    pids: tuple[int, int],
    folder: Path,
    workers: int,
    goals: int,
    slots: int,
) -> tuple[Throughput, Stopped]:
    with RedisServer() as redis:
        cluster = Cluster(redis_url=redis.url, slack_url=urls[0], model_url=urls[1],
                          folder=folder, slots=slots, config=f"{workers}w")  # fmt: skip
        store = await open_store(redis.url, audit_key=AUDIT_KEY)
        try:
            front = await asyncio.gather(
                *(cluster.spawn(f"front-end-{i}", "serve", "--no-worker")
                  for i in range(FRONT_ENDS)),
                *(cluster.spawn(f"worker-{i}", "worker") for i in range(workers)),
            )  # fmt: skip
            gate = asyncio.Semaphore(IN_FLIGHT)

            async def post(i: int) -> None:
                async with gate:
                    await cluster.post_goal(front[i % FRONT_ENDS])

            assert redis.process is not None
            roles = {"front ends": [n.process.pid for n in front[:FRONT_ENDS]],
                     "workers": [n.process.pid for n in front[FRONT_ENDS:]],
                     "redis": [redis.process.pid], "stand-ins": list(pids),
                     "bench": [os.getpid()]}  # fmt: skip
            before = {role: sum(map(cpu_seconds, ids)) for role, ids in roles.items()}
            machine = machine_busy()
            start = time.time()
            await asyncio.gather(*(post(i) for i in range(goals)))
            posted = time.time()
            runs = await all_final(store, goals, timeout=max(60.0, goals * 0.5))
            end = max(r.updated_at.timestamp() for r in runs)
            cpu = {role: sum(map(cpu_seconds, ids)) - before[role] for role, ids in roles.items()}
            observed, machine = time.time() - start, machine_busy() - machine
            statuses = Counter(str(r.status) for r in runs)
            measured = Throughput(workers=workers, goals=goals, seconds=end - start,
                                  posting=posted - start, cpu=cpu, observed=observed,
                                  machine=machine, statuses=statuses)  # fmt: skip
        finally:
            stopped = await cluster.stop()
            await store.close()
    return measured, stopped


async def resume_latency(
    cluster: Cluster, store: Store, front_end: Node, clicks: int
) -> list[float]:
    """Park ``clicks`` runs on an approval, approve each in turn: ms from HTTP 200 to tool start."""
    for _ in range(clicks):
        await cluster.post_goal(front_end, needs_approval=True)
    deadline = time.monotonic() + 60
    while len(pending := await store.list_pending_approvals()) < clicks:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} of {clicks} approvals pending after 60 s")
        # Runs park in other processes: polling is the only way to see them.
        await asyncio.sleep(0.1)
    samples = []
    for approval in pending:
        await cluster.click_approve(front_end, approval.id)
        answered = time.time()
        deadline = time.monotonic() + 30
        while not (calls := [e for e in await store.list_audit(approval.run_id)
                             if e.kind == "tool_call"]):  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {approval.run_id} did not resume 30 s after the click")
            await asyncio.sleep(0.01)
        samples.append((calls[0].at.timestamp() - answered) * 1000)
        # One at a time: the run finishes before the next click.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (await store.get_run(approval.run_id)).status.is_final:
                break
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError(f"run {approval.run_id} not final 30 s after the click")
    return samples


async def approvals(
    urls: tuple[str, str], folder: Path, clicks: int, slots: int
) -> tuple[dict[str, list[float]], list[Stopped]]:
    samples: dict[str, list[float]] = {}
    stops: list[Stopped] = []
    with RedisServer() as redis:
        store = await open_store(redis.url, audit_key=AUDIT_KEY)
        try:
            for config in ("front end + worker", "one serve"):
                name = "resume-split" if config == "front end + worker" else "resume-one"
                cluster = Cluster(redis_url=redis.url, slack_url=urls[0], model_url=urls[1],
                                  folder=folder, slots=slots, config=name)  # fmt: skip
                try:
                    if config == "one serve":
                        front = await cluster.spawn("serve", "serve")
                    else:
                        front, _ = await asyncio.gather(
                            cluster.spawn("front-end", "serve", "--no-worker"),
                            cluster.spawn("worker", "worker"),
                        )
                    samples[config] = await resume_latency(cluster, store, front, clicks)
                finally:
                    stops.append(await cluster.stop())
        finally:
            await store.close()
    return samples, stops


async def measure(goals: int, latency: float, clicks: int, slots: int, folder: Path) -> Result:
    result = Result()
    async with standin("slack", latency) as slack, standin("model", latency) as model:
        urls, pids = (slack[0], model[0]), (slack[1], model[1])
        for workers in WORKER_COUNTS:
            measured, stopped = await throughput(urls, pids, folder, workers, goals, slots)
            result.throughput.append(measured)
            result.stopped.append(stopped)
            Console(stderr=True).log(f"{workers} worker(s): {measured.per_second:.1f} goals/s")
        result.resume, stops = await approvals(urls, folder, clicks, slots)
        result.stopped += stops
    return result


# --- output ----------------------------------------------------------------------------------


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def render(result: Result, latency: float, slots: int) -> list[Table]:
    base = result.throughput[0].per_second
    rate = Table(title=f"throughput: {FRONT_ENDS} front ends, model {latency * 1000:.0f} ms "
                       f"per call, {slots} slots per worker")  # fmt: skip
    for column in (
        "workers",
        "goals",
        "posting s",
        "seconds",
        "goals/s",
        "vs 1 worker",
        "statuses",
    ):
        rate.add_column(column, justify="right" if column != "statuses" else "left")
    for row in result.throughput:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(row.statuses.items()))
        rate.add_row(str(row.workers), str(row.goals), f"{row.posting:.1f}", f"{row.seconds:.1f}",
                     f"{row.per_second:.1f}", f"{row.per_second / base:.2f}x",
                     statuses)  # fmt: skip
    roles = list(result.throughput[0].cpu)
    cpu = Table(title=f"CPU ms per goal, by role; busy = CPU time / (wall x {os.cpu_count()} "
                      "CPUs), ours and the whole machine's")  # fmt: skip
    for column in ("workers", *roles, "total", "busy", "machine busy"):
        cpu.add_column(column, justify="right")
    for row in result.throughput:
        total = sum(row.cpu.values())
        cpu.add_row(str(row.workers), *(f"{row.cpu[r] * 1000 / row.goals:.1f}" for r in roles),
                    f"{total * 1000 / row.goals:.1f}",
                    f"{total / (row.observed * (os.cpu_count() or 1)):.0%}",
                    f"{row.machine / (row.observed * (os.cpu_count() or 1)):.0%}")  # fmt: skip
    resume = Table(title="Approve click (HTTP 200) -> tool_call audit event (ms)")
    for column in ("processes", "clicks", "median", "p90", "baseline median", "ratio"):
        resume.add_column(column, justify="left" if column == "processes" else "right")
    one = statistics.median(result.resume["one serve"])
    for config, samples in result.resume.items():
        median = statistics.median(samples)
        resume.add_row(config, str(len(samples)), f"{median:.1f}", f"{p90(samples):.1f}",
                       f"{one:.1f}", f"{median / one:.2f}x")  # fmt: skip
    health = Table(title="SIGTERM -> exit (s), and WARNING+ lines in the logs")
    for column in ("configuration", "exits", "log warnings and errors"):
        health.add_column(column)
    for stopped in result.stopped:
        exits = ", ".join(
            f"{name} {'KILLED' if seconds == float('inf') else f'{seconds:.1f}'}"
            + ("" if code in (0, None) else f" (exit {code})")
            for name, seconds, code in stopped.exits
        )
        warnings = "; ".join(f"{n}x {m}" for m, n in stopped.warnings.most_common()) or "none"
        health.add_row(stopped.config, exits, warnings)
    return [rate, cpu, resume, health]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def main(goals: int, latency: float, clicks: int, slots: int) -> None:
    console = Console(width=150)
    folder = Path(tempfile.mkdtemp(prefix="airlock-bench-scale-"))
    load, began = load_average(), time.perf_counter()
    result = await measure(goals, latency, clicks, slots, folder)
    for table in render(result, latency, slots):
        console.print(table)
    console.print(
        f"{os.cpu_count()} CPUs; load average {load} at start, {load_average()} at end; "
        f"{time.perf_counter() - began:.0f} s; process logs in {folder}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=200, help="goals per worker count")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per model call")
    parser.add_argument("--clicks", type=int, default=30, help="approvals timed per setup")
    parser.add_argument("--slots", type=int, default=16, help="AIRLOCK_MAX_CONCURRENT_RUNS")
    parser.add_argument("--standin", choices=("slack", "model"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.standin:
        asyncio.run(serve_standin(arguments.standin, arguments.latency))
    else:
        asyncio.run(main(arguments.goals, arguments.latency, arguments.clicks, arguments.slots))
