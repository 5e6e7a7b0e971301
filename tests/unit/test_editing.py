"""The Edit box: exact JSON, secrets masked for the eye, an unchanged box the identical call."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_core.logs import redact
from agent_core.models import Approval, RiskLevel, ToolCallSubject
from bot.slack.editing import editable, edited
from bot.slack.render import hidden
from tests.unit.test_render import FRAGMENTS

SECRETS = ["xoxb-1234-5678-abcdefgh", "sk-ant-api03-abcdefghij", "AKIAABCDEFGHIJKLMNOP",
           "password=hunter2hunter2", "Bearer abcdefghijklmnop",
           "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----"]  # fmt: skip
words = st.lists(st.one_of(st.sampled_from(FRAGMENTS + SECRETS), st.text(max_size=8)),
                 max_size=6).map("".join)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | words,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words, inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
arguments = st.dictionaries(
    st.sampled_from(["command", "password", "token", "url", "api_key", "x"]) | words,
    json_values,
    max_size=5,
)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def approval(args: dict[str, Any]) -> Approval:
    subject = ToolCallSubject(subtask_id="s1", tool="run_command", arguments=args)
    return Approval(run_id="run_edit", subject=subject, risk=RiskLevel.HIGH)


@settings(max_examples=400, deadline=None, database=None)
@given(args=arguments)
def test_an_unchanged_box_is_the_identical_call(args: dict[str, Any]) -> None:
    text = editable(args)
    assert not any(hidden(c) for c in text)  # every invisible character written as \u....
    for value in _strings(args):  # no value holding a secret is shown whole
        assert redact(value) == value or json.dumps(value, ensure_ascii=False) not in text
    back = edited(approval(args), text)
    assert back == args
    original = approval(args)
    resubmitted = original.model_copy(
        update={"subject": original.subject.model_copy(update={"arguments": back})}
    )
    assert approval(back).digest == original.digest == resubmitted.digest


def test_the_box_is_json_not_slack_markup() -> None:
    text = editable({"command": "echo hi > f && cat f <!here> \u202e"})
    assert json.loads(text) == {"command": "echo hi > f && cat f <!here> \u202e"}
    assert "&gt;" not in text and "\\u202e" in text


def test_a_masked_secret_changed_or_moved_is_refused_and_a_new_value_taken() -> None:
    args = {"command": "curl -H 'Authorization: Bearer Zk4Xm8Nq2Pw6Rt0Vy3Bs7Dh1' x", "n": 1}
    shown = json.loads(editable(args))
    assert "Zk4Xm8Nq2Pw6Rt0Vy3Bs7Dh1" not in shown["command"]
    changed = dict(shown, command=shown["command"].replace("curl", "curl -v"))
    assert "masked secret" in str(edited(approval(args), json.dumps(changed)))
    moved = {"other": shown["command"], "n": 1}
    assert "masked secret" in str(edited(approval(args), json.dumps(moved)))
    fresh = dict(shown, command="curl -H 'Authorization: Bearer zyxwvutsrqponm' x")
    assert edited(approval(args), json.dumps(fresh)) == fresh
    kept = dict(shown, n=2)
    assert edited(approval(args), json.dumps(kept)) == dict(args, n=2)


def test_keys_that_mask_alike_stay_apart() -> None:
    args = {"xoxb-1111-aaaaaaaa": 1, "xoxb-2222-bbbbbbbb": 2, "password": "hunter2hunter2"}
    text = editable(args)
    assert "aaaaaaaa" not in text and "hunter2" not in text
    assert edited(approval(args), text) == args


def test_bad_json_is_explained() -> None:
    assert str(edited(approval({}), "{not json")).startswith("Not valid JSON")
    assert edited(approval({}), "[1]") == "The arguments are a JSON object."
