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


PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\nabc\n-----END RSA PRIVATE KEY-----"
SECRETS = {
    "slack": "xoxb-1234-5678-abcdEFGH",
    "slack app": "xapp-1-A0-123-abcdef",
    "anthropic": "sk-ant-api03-Zz_9-xyzxyz",
    "github": "ghp_abcdefghijklmnopqrstuvwxyz0123",
    "aws key id": "AKIAIOSFODNN7EXAMPLE",
    "aws secret": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "bearer": "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
    "pem": PEM,
    "pem cut short": PEM[:60],
}


def test_every_kind_of_secret_is_masked() -> None:
    from agent_core.logs import register_secrets

    register_secrets("configured-signing-secret-42", "short")
    for kind, secret in {**SECRETS, "configured": "configured-signing-secret-42"}.items():
        masked = redact(f"before {secret} after")
        assert "[redacted]" in masked, kind
        assert masked.startswith("before ")
        assert masked.endswith(" after") or kind.startswith("pem")
    assert "wJalrXUtnFEMI" not in redact(SECRETS["aws secret"])
    assert "MIIEow" not in redact(PEM) and "MIIEow" not in redact(PEM[:60])
    assert redact("a short word stays") == "a short word stays"


def test_credentials_given_by_name_are_masked_in_any_common_syntax() -> None:
    for text in ('password=hunter2hunter2', '"password": "hunter2hunter2"',
                 "client_secret: hunter2hunter2", "export API_KEY='hunter2hunter2'"):  # fmt: skip
        assert "hunter2" not in redact(text), text
    assert redact("the password policy changed") == "the password policy changed"


def test_a_key_given_by_name_is_masked_whole_at_debug() -> None:
    """Two patterns that each see part of ``"private_key": "-----BEGIN…`` must not leave the
    body between them: the name's value and the key block are masked together."""
    service_account = json.dumps({"private_key": PEM + "\n", "client_email": "a@b.iam"})
    for message in (service_account, repr({"content": service_account})):
        record = logging.makeLogRecord({"msg": message, "levelno": logging.DEBUG})
        line = JsonFormatter().format(record)
        assert "MIIEow" not in line and "7bq" not in line, line
