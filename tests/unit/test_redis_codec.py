"""How the Redis store writes records and checkpoints, and reads what earlier versions wrote."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from pydantic import BaseModel

from agent_core.audit.chain import AuditHead
from agent_core.models import (
    Approval,
    AuditEvent,
    Plan,
    PlanSubject,
    RiskLevel,
    Run,
    Subtask,
    ToolCallSubject,
)
from agent_core.store._redis_codec import (
    COMPRESS_FROM,
    DICTIONARY,
    checkpoint_of,
    checkpoint_value,
    compact,
    pack,
    record_value,
    unpack,
)
from agent_core.store.base import dump

# Written whole by the previous version (taken from its Redis), and the same records as this
# version writes them. If a default of these models changes, the short form reads differently
# from the whole one and this fails: records already stored without the field would change
# meaning, so such a change needs a migration of stored records first.
_WRITTEN_BEFORE_AND_NOW: list[tuple[type[BaseModel], str, str]] = [
    (
        Run,
        '{"id":"run_6c152fced77f","goal":"restart web","requester":"U0REQ","channel_kind":'
        '"private","status":"awaiting_approval","created_at":"2026-12-05T09:34:24.962493Z",'
        '"updated_at":"2026-12-05T09:34:27.825259Z","plan":{"subtasks":[{"id":"s1",'
        '"description":"restart web","required_tools":[],"depends_on":[],"risk_level":"low"}]},'
        '"results":{},"spend":{"llm_calls":1,"input_tokens":17,"output_tokens":27,'
        '"cache_write_tokens":0,"cache_read_tokens":162,"cost_usd":0.0005046},"attempt":1,'
        '"dry_run":false,"private_data_read":false,"owner":"vm-6153-58c216","version":5}',
        '{"id":"run_6c152fced77f","goal":"restart web","requester":"U0REQ","status":'
        '"awaiting_approval","created_at":"2026-12-05T09:34:24.962493Z","updated_at":'
        '"2026-12-05T09:34:27.825259Z","plan":{"subtasks":[{"id":"s1","description":'
        '"restart web"}]},"spend":{"llm_calls":1,"input_tokens":17,"output_tokens":27,'
        '"cache_read_tokens":162,"cost_usd":0.0005046},"owner":"vm-6153-58c216","version":5}',
    ),
    (
        Approval,
        '{"id":"apr_51016499d33e","run_id":"run_7bd4115e09f6","subject":{"kind":"tool_call",'
        '"subtask_id":"s1","tool":"restart","arguments":{"target":"web"},"tool_use_id":'
        '"toolu_010562c33e7425400ea14062","possibly_partial":false},"risk":"high","requester":'
        '"U0REQ","requested_at":"2026-12-05T09:34:29.019608Z","deadline":'
        '"2026-12-05T10:34:29.019610Z","required_approvals":1,"decisions":[],"status":"pending",'
        '"hop":0,"precedents":[],"grantable":false,"digest":'
        '"4c71b2c26605008836c9a7ac74a517feb23d53bad5d9a7428c31f50b934fe941"}',
        '{"id":"apr_51016499d33e","run_id":"run_7bd4115e09f6","subject":{"subtask_id":"s1",'
        '"tool":"restart","arguments":{"target":"web"},"tool_use_id":'
        '"toolu_010562c33e7425400ea14062","kind":"tool_call"},"risk":"high","requester":"U0REQ",'
        '"requested_at":"2026-12-05T09:34:29.019608Z","deadline":"2026-12-05T10:34:29.019610Z",'
        '"digest":"4c71b2c26605008836c9a7ac74a517feb23d53bad5d9a7428c31f50b934fe941"}',
    ),
    (
        AuditHead,
        '{"key_id":"","mac":"3e039e71c1fa1018fe5a06cdc687cfa572022b2a253753801ed07a5e51ae3660",'
        '"run_id":"run_e712f3323cad","ordinal":51,"count":3,"last_id":"evt_b9e3f62efba8",'
        '"last_hash":"05d69df2c033b60e7e0903b6a81d8621ae2972b5fcafee3bfb20c2d0215102fd",'
        '"last_kind":"approval_requested","legacy":0,"purged":0,"purged_hash":""}',
        '{"mac":"3e039e71c1fa1018fe5a06cdc687cfa572022b2a253753801ed07a5e51ae3660","run_id":'
        '"run_e712f3323cad","ordinal":51,"count":3,"last_id":"evt_b9e3f62efba8","last_hash":'
        '"05d69df2c033b60e7e0903b6a81d8621ae2972b5fcafee3bfb20c2d0215102fd","last_kind":'
        '"approval_requested"}',
    ),
    (
        AuditEvent,
        '{"id":"evt_1d083ec6fd37","run_id":"run_ec0b8f5d2a5e","kind":"run_claimed","actor":'
        '"airlock","at":"2026-12-05T09:34:26.885538Z","data":{"worker":"vm-6153-58c216",'
        '"status":"queued","attempt":1},"seq":1,"prev_hash":"","hash":'
        '"6a6564888e25bdb11b679262c2cc684529d109062ba50cd0206a8c9a65d67040","key_id":""}',
        '{"id":"evt_1d083ec6fd37","run_id":"run_ec0b8f5d2a5e","kind":"run_claimed","actor":'
        '"airlock","at":"2026-12-05T09:34:26.885538Z","data":{"worker":"vm-6153-58c216",'
        '"status":"queued","attempt":1},"seq":1,"hash":'
        '"6a6564888e25bdb11b679262c2cc684529d109062ba50cd0206a8c9a65d67040"}',
    ),
]


@pytest.mark.parametrize(("model", "before", "now"), _WRITTEN_BEFORE_AND_NOW)
def test_records_leave_defaults_out_and_read_as_the_whole_record(
    model: type[BaseModel], before: str, now: str
) -> None:
    record = model.model_validate_json(before)
    assert compact(record) == now
    assert model.model_validate_json(now) == record
    assert len(now) < len(before)


def test_union_tags_are_kept_though_they_are_defaults() -> None:
    plan = PlanSubject(plan=Plan(subtasks=[Subtask(id="s1", description="restart web")]))
    call = ToolCallSubject(subtask_id="s1", tool="restart", arguments={})
    for subject in (plan, call):
        approval = Approval(run_id="run_1", subject=subject, risk=RiskLevel.HIGH)
        text = compact(approval)
        assert f'"kind":"{subject.kind}"' in text
        assert Approval.model_validate_json(text) == approval


def test_a_record_that_would_not_read_back_equal_is_written_whole() -> None:
    class Odd(BaseModel):
        # Reading fills the default and then changes it: without the field, the record
        # would not come back as it was.
        name: str = "default"

        def model_post_init(self, context: object) -> None:
            if self.name == "default":
                self.name = "changed"

    odd = Odd()
    odd.name = "default"
    assert compact(odd) == dump(odd) == '{"name":"default"}'


def test_a_record_with_a_float_json_cannot_hold_is_written_whole() -> None:
    event = AuditEvent(run_id="run_1", kind="llm_call", actor="airlock",
                       data={"cost_usd": float("nan"), "seq": 0})  # fmt: skip
    assert compact(event) == dump(event)


def test_text_checkpoints_that_pack_no_shorter_are_kept_as_text_and_read_back() -> None:
    # Text the dictionary knows nothing of, and too short to repeat itself: packing it
    # would make it longer.
    data = '{"ünïcödé":"🚀✈⛵"}'.encode()
    value = checkpoint_value(data)
    assert value == "j" + data.decode()
    assert checkpoint_of(value) == data


def test_short_checkpoints_are_packed_when_shorter_and_read_back() -> None:
    data = '{"conversations":{"s1":[{"role":"user","content":"ünïcödé 🚀"}]}}'.encode()
    value = checkpoint_value(data)
    assert value.startswith("p") and len(value) < len(data)
    assert checkpoint_of(value) == data


def test_large_checkpoints_are_compressed_and_read_back() -> None:
    data = b'{"conversations":{"s1":[' + b'{"role":"user","content":"restart web"},' * 400 + b"]}}"
    assert len(data) >= COMPRESS_FROM
    value = checkpoint_value(data)
    assert value.startswith("z") and len(value) < len(data) // 4
    assert checkpoint_of(value) == data


def test_binary_checkpoints_are_safe() -> None:
    for data in (b"\x00first\xff", b"", b"\xff" * 5000, bytes(range(256)) * 10):
        assert checkpoint_of(checkpoint_value(data)) == data


def test_hex_checkpoints_written_before_are_read() -> None:
    for data in (b"", b"\x00first\xff", b'{"journal":true}', b"abcdef"):
        assert checkpoint_of(data.hex()) == data


def test_a_forged_compressed_checkpoint_cannot_inflate_without_bound() -> None:
    bomb = "z" + base64.b64encode(zlib.compress(b"\0" * (4 * 1024 * 1024), 9)).decode()
    assert len(bomb) < 8 * 1024
    with pytest.raises(ValueError, match="unreadable checkpoint"):
        checkpoint_of(bomb, limit=1024 * 1024)
    assert len(checkpoint_of(bomb)) == 4 * 1024 * 1024  # under the real limit: read
    for garbage in ("z!!!", "z" + base64.b64encode(b"not zlib").decode(), "xyz"):
        with pytest.raises(ValueError):
            checkpoint_of(garbage)


# Values this version wrote for the records above (their "now" forms, packed). Packed values
# are read with the dictionary they were deflated against: if it changes by a byte, values
# already stored stop reading, so it is pinned (a new one needs a letter of its own).
_DICTIONARY_SHA256 = "c5917f117f98c0cee2c683e98a26d149be548f07fc1a1c5ee5af776cf65ed5a0"
_PACKED_NOW = [
    "pldYxDoUwDAPQq/wLFCVuk1D2fwAQEyMINlaYuDswURUG2L1YepKdCNSBBdNxRM2mS+MxXedZ+a1jn/en5l9/xAl1DE"
    "fSUqx8qBCKqAjRd3e1edSKEgKJ3VfOaYP3stlutmGPjlmRUyahoInnZXbK4p2UA1hT3bLt",
    "plZc7DsJADETvkj5o7LW9cXoOAKJKt98rUHF3lgZFEUjQjqcYzSts79pVApm41xDaMUvMVYi0wbv92PrYea8r51D+NLT"
    "xAIz5veXpCwoQ1LiMHFFYBWiJBMb/I8L1fPmEiW0mnqE3+BpkZT+B3LBsR35vI2FnJGx7sFIiZS5sBgWWJVjxFFOJkpRi"
    "b5lD1ZBT1Tp04aUE6orsQXpzoenxBA==",
    "pjdS7DYMxCATgleAQ2B6H5xJZPi6iKPqrdFehK/ju9Xl4aZLTi5PHmXhPq5Nlpe2V47pAQOAOoCyVTdxFy7WVvcWMnuX"
    "vKYwIJL1+8Sh/+cjTT5yWMfSE74cl0rJTgySRMOrVdOgm31zbcEvgLIRO+nRLTIASRWBlwtQfFt8=",
    "pjZQxDgIxEAP/Qh+0cbLO5t5BRZfs5jpaOv4OBRIIUdwDLI8Lz1d/DrGynHuU9suyXKbtGhi6PlyHrg8BU0YSvUjfSt3"
    "As5lqses/K9xviVlLUnNkHnfEex0HldXMFnTGzHmydRAOd1pV9MjShZhDxUMgHOb9lQo2qXJ6PAE=",
]


def test_the_dictionary_packed_values_need_is_the_one_they_were_written_with() -> None:
    assert hashlib.sha256(DICTIONARY).hexdigest() == _DICTIONARY_SHA256


@pytest.mark.parametrize(
    ("written", "now"),
    list(zip(_PACKED_NOW, [now for _, _, now in _WRITTEN_BEFORE_AND_NOW], strict=True)),
)
def test_values_packed_by_this_version_are_read(written: str, now: str) -> None:
    assert unpack(written) == now


@pytest.mark.parametrize(("model", "before", "now"), _WRITTEN_BEFORE_AND_NOW)
def test_records_are_stored_packed_when_shorter(
    model: type[BaseModel], before: str, now: str
) -> None:
    record = model.model_validate_json(before)
    value = record_value(record)
    assert value.startswith("p") and len(value) < len(now) * 2 // 3
    assert model.model_validate_json(unpack(value)) == record


def test_text_that_packs_no_shorter_is_kept_as_it_is() -> None:
    text = '{"ünïcödé":"🚀✈⛵"}'
    assert pack(text) == text
    assert unpack(text) == text
    assert unpack(text.encode()) == text


def test_a_forged_packed_value_is_refused_and_cannot_inflate_without_bound() -> None:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    packed = deflate.compress(b" " * (4 * 1024 * 1024)) + deflate.flush()
    bomb = "p" + base64.b64encode(packed).decode()
    assert len(bomb) < 8 * 1024
    with pytest.raises(ValueError, match="unreadable value"):
        unpack(bomb, limit=1024 * 1024)
    assert len(unpack(bomb)) == 4 * 1024 * 1024  # under the real limit: read
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    not_text = "p" + base64.b64encode(deflate.compress(b"\xff\xfe") + deflate.flush()).decode()
    truncated = _PACKED_NOW[0][:41]  # whole base64, half a deflate stream
    for garbage in ("p", "p!!!", "p" + base64.b64encode(b"not deflate").decode(), not_text,
                    truncated, _PACKED_NOW[0] + "AAAA"):  # fmt: skip
        with pytest.raises(ValueError, match="unreadable"):
            unpack(garbage)
