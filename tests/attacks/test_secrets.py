"""Secrets planted where an attacker (or a careless person) would put them reach no sink.

Every kind of secret in ``agent_core.testing.secret_samples`` is planted in a goal, a tool's
output, the model's answer, the model's facts and lessons, a tool error and a model API
error, in real runs: the real Bolt app and runner against the Slack and Anthropic stand-ins,
a real SQLite store, the real audit trail and real long-term memory, logs at DEBUG; and
``airlock run`` as a process. Then every sink is searched for every secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent_core import Airlock, telemetry
from agent_core.config import Settings, load_settings
from agent_core.llm import LLMRequest, ModelTier
from agent_core.llm.anthropic import AnthropicLLM
from agent_core.logs import JsonFormatter, contains_secret, redact
from agent_core.memory.facts import session_of
from agent_core.models import FINAL_STATUSES, ApprovalStatus, Run, RunStatus
from agent_core.store import Store, open_store
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    fault,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.secret_samples import ORDINARY, SAMPLES
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackStandIn
from bot.cli.audit import describe
from bot.slack.app import build_app, build_client
from bot.slack.server import connect_slack
from tests.e2e.test_serve import clean_env
from tests.e2e.test_slack_approvals import pressed
from tests.support import SERVE_READY, eventually

SIGNING = "attack-signing-secret-7Hq2Lm9Xv"
TOKEN = "xoxb-2047381925-7314859209999-ConfiguredBotTokenZ9"
KEY = "sk-ant-api03-ConfiguredAnthropicKey-Q7w2E9r4T1y6U3i8O5p0"
CONFIGURED = {"configured signing secret": SIGNING, "configured bot token": TOKEN,
              "configured api key": KEY}  # fmt: skip
NEEDLES = {s.kind: s.needle for s in SAMPLES} | {
    "configured signing secret": SIGNING, "configured bot token": "ConfiguredBotTokenZ9",
    "configured api key": "ConfiguredAnthropicKey",
}  # fmt: skip
EVERY_SECRET = "\n".join([s.text for s in SAMPLES] + list(CONFIGURED.values()))
MENTION = load_json_payload("app_mention.json")
PERSON = MENTION["event"]["user"]


def leaked(text: str) -> list[str]:
    """The kinds of planted secret whose needle is in ``text``."""
    return [kind for kind, needle in NEEDLES.items() if needle in text]


def packed(limit: int) -> list[str]:
    """Every planted secret, packed into pieces of at most ``limit`` characters."""
    pieces: list[str] = []
    for text in [s.text for s in SAMPLES] + list(CONFIGURED.values()):
        if pieces and len(pieces[-1]) + len(text) + 1 <= limit:
            pieces[-1] += "\n" + text
        else:
            pieces.append(text)
    return pieces


# The detector, however a secret is spelled


def spellings(text: str) -> dict[str, str]:
    """The ways the same secret reaches a sink: as is, in JSON, in a repr, escaped, in a line."""
    return {
        "plain": text,
        "json": json.dumps({"output": text, "n": 1}),
        "repr": repr({"content": [{"text": text}]}),
        "after an escaped newline": "line one\\n" + text.replace("\n", "\\n"),
        "in a sentence": f"I found {text}, use it.",
    }


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.kind for s in SAMPLES])
def test_every_kind_of_secret_is_masked_however_it_is_spelled(sample: Any) -> None:
    for how, text in spellings(sample.text).items():
        masked = redact(text)
        assert sample.needle not in masked, f"{sample.kind} leaks {how}: {masked}"
        assert "[redacted]" in masked and contains_secret(text), (sample.kind, how)


def test_ordinary_text_stays_readable() -> None:
    for text in ORDINARY:
        assert redact(text) == text
        assert not contains_secret(text), text


SERVICE_ACCOUNT = json.dumps({
    "type": "service_account", "project_id": "acme-prod", "private_key_id": "4f1c2d3e",
    "private_key": next(s.text for s in SAMPLES if s.kind == "pem pkcs8 private key") + "\n",
    "client_email": "deployer@acme-prod.iam.gserviceaccount.com",
})  # fmt: skip
"""A Google service-account file: the PEM key is a JSON value named ``private_key``."""


@pytest.fixture
def debug_lines() -> Iterator[list[str]]:
    """Every log line at DEBUG and above, formatted as ``airlock serve`` writes them."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    handler, root = Keep(level=logging.DEBUG), logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def test_a_key_given_by_name_reaches_no_log_line_at_debug(debug_lines: list[str]) -> None:
    """At DEBUG the SDK logs each request whole; the key must not survive two patterns that
    each matched a part of it."""
    body = "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSi"
    async with AnthropicStandIn(api_key=KEY, script=[text_reply("read it")]) as server:
        llm = AnthropicLLM(api_key=KEY, base_url=server.base_url, planner_model="claude-opus-4-7",
                           executor_model="claude-sonnet-4-6", fast_model="claude-haiku-4-5",
                           max_retries=0, timeout_seconds=10)  # fmt: skip
        async with llm:
            said = [{"role": "user", "content": SERVICE_ACCOUNT}]
            await llm.complete(
                LLMRequest(tier=ModelTier.EXECUTOR, system="s", max_tokens=256, messages=said)
            )
    logging.getLogger("airlock.test").debug("tool output: %s", SERVICE_ACCOUNT)
    logging.getLogger("airlock.test").debug(
        "call", extra={"arguments": json.loads(SERVICE_ACCOUNT)}
    )
    text = "\n".join(debug_lines)
    assert "Request options" in text  # the SDK's whole request was logged
    assert body not in text and "R5Kjp1vRt1fjORS6ilI8ihN5KXSc7" not in text


# Configured secrets


def test_every_secret_setting_is_masked_once_settings_load() -> None:
    values: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        if "SecretStr" in str(field.annotation):
            values[name] = f"configured-{name}-value-long-enough-for-any-key-Zq8"
    values["store_url"] = "redis://airlock:Redis-Passw0rd-Zq8@cache.internal:6379/0"
    values["anthropic_base_url"] = "https://gateway:Gateway-Passw0rd-Zq8@llm.internal/"
    load_settings(None, **values)
    assert len(values) >= 6
    shown = redact(" ".join(str(v) for v in values.values()))
    assert "Zq8" not in shown, shown


def test_an_mcp_servers_credentials_are_masked_once_its_config_loads(tmp_path: Path) -> None:
    from agent_core.tools.mcp.config import load_mcp_config

    env = {"GITHUB_TOKEN": "plain-looking-value-Zq8", "LOG_LEVEL": "debug-verbose-mode"}
    config = {"servers": {"github": {"command": "github-mcp-server", "env": env}}}
    (tmp_path / "mcp.json").write_text(json.dumps(config))
    load_mcp_config(tmp_path / "mcp.json")
    assert redact("token plain-looking-value-Zq8 at debug-verbose-mode") == (
        "token [redacted] at debug-verbose-mode"
    )


# A real run through the Slack bot: every sink


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.use_tracer_provider(None)
        provider.shutdown()


def _plan() -> dict[str, Any]:
    return {"subtasks": [
        {"id": "s1", "description": "read the notes and file a summary; the deploy key is "
                                     + SAMPLES[0].text, "depends_on": [],
         "required_tools": ["read_file", "write_file"], "risk_level": "high"},
        {"id": "s2", "description": "check the older notes", "depends_on": ["s1"],
         "required_tools": ["read_file"], "risk_level": "low"},
    ]}  # fmt: skip


def _script() -> list[Any]:
    """What the model says: a plan, a tool output read, secrets remembered, a risky write
    (the run parks and resumes), an answer full of secrets, facts and lessons full of them,
    a tool error naming one, and an API error quoting all of them."""
    learned = {
        "facts": {f"credential {i}": piece for i, piece in enumerate(packed(480)[:20])},
        "lessons": [{"content": piece, "type": "semantic"} for piece in packed(990)[:5]],
    }
    remembered = [tool_use_reply("remember", {"content": piece}) for piece in packed(990)]
    return [
        tool_use_reply("submit_plan", _plan()),
        tool_use_reply("read_file", {"path": "notes.txt"}),
        *remembered,
        tool_use_reply("write_file", {"path": "summary.txt", "content": "summary filed"}),
        text_reply("Summary filed. Credentials found:\n" + EVERY_SECRET),
        text_reply(json.dumps(learned)),
        tool_use_reply("read_file", {"path": "old " + SAMPLES[13].text + ".txt"}),
        fault(400, message="bad request near " + EVERY_SECRET),
    ]


async def _click_until_final(url: str, store: Store, signer: SlackRequestSigner) -> Run:
    """Approve every request the run makes (as its requester, an approver) until it ends."""
    clicked: set[str] = set()

    async def settled() -> bool:
        runs = await store.list_runs()
        if not runs:  # the mention is acknowledged before its run is created
            return False
        run = runs[0]
        for approval in await store.list_pending_approvals(run_id=run.id):
            if approval.id not in clicked:
                clicked.add(approval.id)
                click = pressed("airlock_approve", approval.id, PERSON)
                assert (await post_to_bot(url, signer.interaction(click)))[0] == 200
        return run.status in FINAL_STATUSES

    await eventually(settled, timeout=90, interval=0.05)
    [run] = await store.list_runs()
    # The plan, each `remember` and the read of a path naming a secret (a secret in its
    # arguments makes a call HIGH), and the write: the run parked and resumed for each.
    assert len(clicked) == 3 + len(packed(990))
    return run


def _files(folder: Path, *, skip: Path) -> str:
    """Every stored byte under ``folder`` (but ``skip``), as text to search.

    A SQLite database is read through SQLite (its WAL included), every table but
    ``approvals``: an approval keeps the exact arguments of the call it lets run, which its
    digest binds (README, Security model). Every other file is read as raw bytes.
    """
    parts: list[str] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or skip in path.parents or path.name.endswith(("-wal", "-shm")):
            continue
        if path.suffix == ".db":
            parts.append(_database_without_approvals(path))
        else:
            parts.append(path.read_bytes().decode("latin-1"))
    return "".join(parts)


def _database_without_approvals(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return "\n".join(
            line for line in db.iterdump() if not line.startswith('INSERT INTO "approvals"')
        )


async def test_secrets_planted_everywhere_reach_no_sink(
    tmp_path: Path, debug_lines: list[str], spans: InMemorySpanExporter
) -> None:
    async with SlackStandIn(bot_token=TOKEN) as slack, AnthropicStandIn(api_key=KEY) as model:
        settings = load_settings(
            None, slack_bot_token=TOKEN, slack_signing_secret=SIGNING, slack_api_url=slack.api_url,
            anthropic_api_key=KEY, anthropic_base_url=model.base_url, data_dir=tmp_path / "data",
            llm_max_retries=0, approvers=[PERSON], allow_self_approval=True,
        )  # fmt: skip
        workspace = settings.effective_workspace_dir
        workspace.mkdir(parents=True)
        (workspace / "notes.txt").write_text(EVERY_SECRET)
        model.enqueue(*_script())
        async with AsyncExitStack() as stack:
            client = build_client(settings)
            runner = await stack.enter_async_context(Airlock.from_settings(settings))
            store = runner.store
            app = build_app(settings, client=client)
            await connect_slack(runner, app, client)
            await runner.start_runs()
            stack.push_async_callback(runner.stop_runs)
            site = web.AppRunner(app.web_app(), access_log=None)
            await site.setup()
            stack.push_async_callback(site.cleanup)
            await web.TCPSite(site, "127.0.0.1", 0).start()
            url = f"http://127.0.0.1:{site.addresses[0][1]}/slack/events"
            mention = copy.deepcopy(MENTION)
            mention["event"]["text"] = "<@W111> file a summary of notes.txt using\n" + EVERY_SECRET
            signer = SlackRequestSigner(SIGNING)
            assert (await post_to_bot(url, signer.event(mention)))[0] == 200
            run = await _click_until_final(url, store, signer)
            assert run.status is RunStatus.FAILED and "400" in (run.error or "")
            assert (workspace / "summary.txt").read_text() == "summary filed"
            await slack.wait_for_answer("**failed**", timeout=10)
            events = await store.list_audit(run.id)
            approvals = [await store.get_approval(e.data["approval_id"]) for e in events
                         if e.kind == "approval_requested"]  # fmt: skip

            async def remembered() -> bool:  # the run's own memory is written after it ends
                return any(m.data.get("kind") == "run" for m in await store.list_memories())

            await eventually(remembered, timeout=20)
            memories = await store.list_memories()
            facts = await store.get_facts(session_of(run))
            stored = run.model_dump_json() + str(await store.load_checkpoint(run.id))
            db_while_open = _files(settings.data_dir, skip=workspace)
        model.assert_script_consumed()
    assert all(a.status is ApprovalStatus.APPROVED and a.consumed_at for a in approvals)
    assert {m.data.get("kind") for m in memories} >= {"run", "approval"} and len(memories) >= 6
    assert len(facts) == len(packed(480)[:20]) and "[redacted]" in json.dumps(facts)
    sinks = {
        "the SQLite file and every other file in the data folder, while open":
            db_while_open,
        "the data folder after closing": _files(settings.data_dir, skip=workspace),
        "the stored run and its checkpoint": stored,
        "the audit export": "\n".join(e.model_dump_json() for e in events),
        "airlock audit show": "\n".join(describe(e) for e in events),
        "the memory records": "\n".join(m.model_dump_json() for m in memories),
        "the thread's facts": json.dumps(facts),
        "the log lines at DEBUG": "\n".join(debug_lines),
        "Slack": json.dumps([c.args for c in slack.calls]),
        "the spans": json.dumps([[s.name, dict(s.attributes or {}), s.status.description]
                                 for s in spans.get_finished_spans()]),
    }  # fmt: skip
    assert "[redacted]" in sinks["Slack"] and "[redacted]" in sinks["the memory records"]
    assert any("Request options" in line for line in debug_lines)
    for sink, text in sinks.items():
        assert leaked(text) == [], f"{sink} holds {leaked(text)}"


# The terminal: `airlock run` as a process


async def _airlock(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(90):
        out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_the_terminal_shows_no_planted_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "workspace").mkdir(parents=True)
    (data / "workspace" / "notes.txt").write_text(EVERY_SECRET)
    plan = {"subtasks": [
        {"id": "s1", "description": "read notes with " + SAMPLES[8].text, "depends_on": [],
         "required_tools": ["read_file", "write_file"], "risk_level": "high"},
        {"id": "s2", "description": "again", "depends_on": ["s1"], "required_tools": [],
         "risk_level": "low"}]}  # fmt: skip
    script = [
        tool_use_reply("submit_plan", plan),
        tool_use_reply("read_file", {"path": "notes.txt"}),
        tool_use_reply("write_file", {"path": "out.txt", "content": "done"}),
        text_reply("Found:\n" + EVERY_SECRET),
        tool_use_reply("read_file", {"path": "old " + SAMPLES[13].text + ".txt"}),
        fault(400, message="bad request near " + EVERY_SECRET),
    ]
    async with AnthropicStandIn(api_key=KEY, script=script) as server:
        env = clean_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.base_url,
                        SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SIGNING,
                        AIRLOCK_DATA_DIR=str(data), AIRLOCK_LLM_MAX_RETRIES="0",
                        AIRLOCK_LOG_LEVEL="DEBUG", COLUMNS="200")  # fmt: skip
        code, shown = await _airlock(tmp_path, env, "run", "--yes", "summarise notes.txt with\n"
                                     + EVERY_SECRET)  # fmt: skip
    assert code == 1 and "failed" in shown, shown
    [run_id] = set(re.findall(r"\brun (run_[0-9a-f]{12})\b", shown))
    outputs = {"airlock run": shown}
    for args in (("audit", "show", run_id), ("audit", "export", run_id), ("config",)):
        outputs[" ".join(args[:2])] = (await _airlock(tmp_path, env, *args))[1]
    outputs["the SQLite file"] = _files(data, skip=data / "workspace")
    assert run_id in outputs["audit export"]
    for sink, text in outputs.items():
        assert leaked(text) == [], f"{sink} shows {leaked(text)}"


async def test_the_store_password_is_not_shown_by_airlock_config(tmp_path: Path) -> None:
    env = clean_env(AIRLOCK_STORE_URL="redis://:Redis-Passw0rd-Zq8@cache.internal:6379/0",
                    AIRLOCK_DATA_DIR=str(tmp_path / "data"), COLUMNS="200",
                    **SERVE_READY)  # fmt: skip
    code, shown = await _airlock(tmp_path, env, "config")
    assert code == 0, shown
    assert "cache.internal" in shown and "Redis-Passw0rd" not in shown


async def test_airlock_approvals_shows_no_secret_in_a_waiting_call(tmp_path: Path) -> None:
    """An approval keeps its call's exact arguments (they are what runs); the list of
    waiting approvals shows them masked."""
    from agent_core.models import Approval, RiskLevel, ToolCallSubject

    data = tmp_path / "data"
    data.mkdir()
    store = await open_store(f"sqlite:///{data / 'airlock.db'}")
    try:
        call = ToolCallSubject(subtask_id="s1", tool="run_command",
                               arguments={"command": f"curl -H 'Authorization: Bearer "
                                          f"{SAMPLES[0].text}' {SAMPLES[32].text}"})  # fmt: skip
        await store.create_approval(Approval(run_id="run_x", subject=call, risk=RiskLevel.HIGH))
    finally:
        await store.close()
    env = clean_env(AIRLOCK_DATA_DIR=str(data), COLUMNS="300")
    code, shown = await _airlock(tmp_path, env, "approvals")
    assert code == 0 and "run_command" in shown, shown
    assert leaked(shown) == [], shown
