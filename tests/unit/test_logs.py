"""JSON log lines carry their extra fields and never a token."""

from __future__ import annotations

import json
import logging

from agent_core.logs import JsonFormatter, redact


def test_a_record_becomes_one_json_line_with_its_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "airlock.test", "levelname": "INFO", "msg": "run %s queued", "args": ("run_1",)}
    )
    record.run_id = "run_1"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert (parsed["message"], parsed["run_id"], parsed["level"]) == (
        "run run_1 queued",
        "run_1",
        "INFO",
    )


def test_tokens_are_masked_wherever_they_appear() -> None:
    text = "bot xoxb-1234-5678-abcdEFGH app xapp-1-A0-123-abc key sk-ant-api03-Zz_9-x"
    assert redact(text) == "bot xoxb-[redacted] app xapp-[redacted] key sk-ant-[redacted]"
    record = logging.makeLogRecord({"msg": "calling with xoxb-secret-token"})
    record.token = "sk-ant-api03-secret"
    line = JsonFormatter().format(record)
    assert "secret" not in line
