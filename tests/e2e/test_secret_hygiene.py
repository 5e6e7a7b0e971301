"""Secrets planted in a tool's output and in the model's answer reach none of: the audit
trail, the logs, the spans, or Slack. The real Bolt app, runner and channel, in process."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent_core import Airlock, telemetry
from agent_core.config import load_settings
from agent_core.logs import JsonFormatter
from agent_core.models import FINAL_STATUSES, RunStatus
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackStandIn
from bot.slack.app import build_app, build_client
from bot.slack.server import connect_slack
from tests.support import eventually

SIGNING = "hygiene-signing-secret-0123"
TOKEN = "xoxb-hygiene-bot-token-0123"
KEY = "sk-ant-hygiene-key-0123"
PLANTED = {
    "slack token": "xoxb-9999-8888-PLANTEDslackTOKEN",
    "slack app token": "xapp-1-A0PLANTED-123-appTOKENvalue",
    "anthropic key": "sk-ant-api03-PLANTEDanthropicKEY_0",
    "github token": "ghp_PLANTEDgithubTOKEN0123456789abcd",
    "aws key id": "AKIAPLANTEDAWSKEY012",
    "aws secret": "aws_secret_access_key=PLANTEDawsSECRETkey0123456789abcdefghij",
    "bearer": "Authorization: Bearer PLANTEDbearer.token.value",
    "pem": "-----BEGIN PRIVATE KEY-----\nPLANTEDpemBODYline\n-----END PRIVATE KEY-----",
    "configured signing secret": SIGNING,
    "configured bot token": TOKEN,
}
# What must never appear: the part of each secret after any prefix kept for readers.
NEEDLES = ["PLANTEDslackTOKEN", "PLANTED-123-appTOKEN", "PLANTEDanthropicKEY",
           "PLANTEDgithubTOKEN", "AKIAPLANTEDAWSKEY012", "PLANTEDawsSECRET", "PLANTEDbearer",
           "PLANTEDpemBODY", SIGNING, "hygiene-bot-token"]  # fmt: skip
MENTION = load_json_payload("app_mention.json")


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Every log line, formatted as `airlock serve` writes them."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


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


@pytest.fixture
async def services() -> AsyncIterator[tuple[SlackStandIn, AnthropicStandIn]]:
    async with SlackStandIn(bot_token=TOKEN) as slack, AnthropicStandIn(api_key=KEY) as model:
        yield slack, model


async def test_planted_secrets_reach_no_audit_log_span_or_slack_message(
    tmp_path: Path, logs: list[str], spans: InMemorySpanExporter,
    services: tuple[SlackStandIn, AnthropicStandIn],
) -> None:  # fmt: skip
    slack, model = services
    settings = load_settings(
        None, slack_bot_token=TOKEN, slack_signing_secret=SIGNING, slack_api_url=slack.api_url,
        anthropic_api_key=KEY, anthropic_base_url=model.base_url, data_dir=tmp_path / "data",
        llm_max_retries=0, memory_enabled=False,
    )  # fmt: skip
    workspace = settings.effective_workspace_dir
    workspace.mkdir(parents=True)
    (workspace / "notes.txt").write_text("\n".join(PLANTED.values()))
    plan = {"subtasks": [{"id": "s1", "description": "read the notes", "depends_on": [],
                          "required_tools": ["read_file"], "risk_level": "low"}]}  # fmt: skip
    model.enqueue(
        tool_use_reply("submit_plan", plan),
        tool_use_reply("read_file", {"path": "notes.txt"}),
        text_reply("Found these:\n" + "\n".join(PLANTED.values())),
    )
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
        mention["event"]["text"] = "<@U0LAAF3BS> summarise notes.txt"
        status, _ = await post_to_bot(url, SlackRequestSigner(SIGNING).event(mention))
        assert status == 200

        async def finished() -> bool:
            runs = await store.list_runs()
            return bool(runs) and runs[0].status in FINAL_STATUSES

        await eventually(finished, timeout=30)
        [run] = await store.list_runs()
        assert run.status is RunStatus.COMPLETED
        await slack.wait_for_answer("**completed**", timeout=10)
        audit = json.dumps([e.model_dump(mode="json") for e in await store.list_audit(run.id)])
    sent = json.dumps([call.args for call in slack.calls]) + "".join(
        str(upload) for upload in getattr(slack, "uploads", [])
    )
    exported = json.dumps([dict(span.attributes or {}) for span in spans.get_finished_spans()])
    exported += json.dumps([e.name for s in spans.get_finished_spans() for e in s.events])
    places = {"audit": audit, "logs": "\n".join(logs), "spans": exported, "slack": sent}
    assert "[redacted]" in audit and "[redacted]" in sent  # the secrets did pass through
    for place, text in places.items():
        leaked = [needle for needle in NEEDLES if needle in text]
        assert leaked == [], f"{place} leaks {leaked}"
    assert any(s.name.startswith("execute_tool") for s in spans.get_finished_spans())
