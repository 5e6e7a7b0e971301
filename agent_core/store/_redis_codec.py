"""How the Redis store writes records and checkpoints small, and reads every form it wrote.

Redis keeps each value in memory, so a parked run costs what its values weigh. Three
savings, each read back alongside the older forms:

- Records (runs, approvals, audit events and heads) leave out fields that hold their
  model's default, as well as ``None`` ones: a fresh record is mostly defaults (empty
  lists, zeros, ``false``). Union tags (``kind``) are kept, since reading needs them to pick
  the model. The text is read back before it is used, and a record that would not come
  back equal is written whole instead (:func:`~agent_core.store.base.dump`). Records
  written whole, as every earlier version did, read as they always have.
- Checkpoints were hex (twice their size). Now: ``j`` and the UTF-8 text (a checkpoint is
  JSON), or ``z`` and base64 of its zlib compression when that is shorter (a long
  conversation) or the bytes are not UTF-8. Neither letter is a hex digit, so a value
  written before is told apart and read as hex.
- Records, audit events and heads, and checkpoints, are stored packed (:func:`pack`) when
  that is shorter: ``p`` and base64 of their raw deflate against :data:`DICTIONARY`, a
  fixed text of the field names and words these values are made of (a checkpoint from
  :data:`COMPRESS_FROM` bytes is compressed with plain zlib as before). Plain zlib saves little
  on values of a few hundred bytes (it has nothing to refer back to); with the dictionary a
  run record or an event takes about half. ``p`` is neither ``{`` (JSON, every record
  written before) nor a hex digit (checkpoints written before), so each form is told apart.
  Sealed records are sealed over their JSON, never over this form: how they are stored
  changes nothing in what their seals cover.

Omitted defaults mean a record is read with the defaults of the code reading it: a
default of a stored model must not change without a migration (the test of this module
pins them with records written by this version).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from pydantic import BaseModel

from agent_core.store.base import dump

__all__ = [
    "COMPRESS_FROM",
    "DICTIONARY",
    "MAX_CHECKPOINT",
    "checkpoint_of",
    "checkpoint_value",
    "compact",
    "pack",
    "record_value",
    "unpack",
]

COMPRESS_FROM = 1024
"""Checkpoints of at least this many bytes are compressed when that makes them shorter;
below, base64's third more and zlib's header eat most of the saving."""

MAX_CHECKPOINT = 512 * 1024 * 1024
"""Bytes a compressed checkpoint or a packed value may expand to (Redis's largest value): a
tampered value must not be able to inflate without bound in the reading process."""

_TEXT = "j"
_ZLIB = "z"
_PACKED = "p"

# What packed values are deflated against. Values stored packed can only be read with these
# exact bytes: never change them; a new dictionary needs a letter of its own, and this one
# kept to read what was written with it. Deflate refers back to text near the end more
# cheaply, so the commonest fragments come last. Made of field names, enum values and
# airlock's own wording, never of anyone's data.
DICTIONARY = "".join(
    (
        '"channel_kind":"public""thread_ts":"","channel":"C',
        '"error":"","results":{"s1":{"status":"completed","output":"","finished_at":"',
        '"spent_before":{"dry_run":true,"private_data_read":true,"attempt":2,',
        '"status":"failed""status":"rejected""status":"killed""status":"timed_out"',
        '"status":"budget_exceeded""status":"running""status":"planning"',
        '"decisions":[{"kind":"approve","by":"U","at":"","reason":"',
        '"edited_arguments":{"edited_risk":"as_admin":true}],"status":"approved"',
        '"status":"rejected","decided_by":"U","decided_at":"","consumed_at":"',
        '"approvers":["U"],"hop":1,"precedents":[{"outcome":"call":"',
        '"grantable":true,"required_approvals":2,"subject":{"kind":"plan","plan":{',
        '"risk":"medium""risk":"low""risk_level":"high","required_tools":[],"depends_on":[],',
        '"purged":1,"purged_hash":"","purged_at":"","legacy":1,"keyed_from":',
        '"kind":"plan_created""kind":"subtask_finished""kind":"run_finished"',
        '"kind":"run_killed""kind":"run_retried""kind":"run_refused""kind":"llm_error"',
        '"kind":"tool_result_reused""kind":"tool_outcome_unknown""kind":"tool_refused"',
        '"kind":"tool_process_started""kind":"tool_process_ended""kind":"injection_suspected"',
        '"kind":"approval_reasked""kind":"approval_superseded""kind":"approval_kept"',
        '"kind":"approval_granted_for_run""kind":"approval_expired""kind":"approval_cancelled"',
        '"kind":"approval_escalated""kind":"approval_undeliverable""kind":"decision_refused"',
        '"kind":"memory_added""kind":"memory_forgotten""kind":"halt""kind":"resume"',
        '"kind":"approval_decided""kind":"tool_result""is_error":true,"kind":"tool_call"',
        '{"type":"text","text":"{"type":"tool_result","tool_use_id":"toolu_',
        '"stop_reason":"end_turn""tier":"planner""tier":"fast""model":"claude-opus-4-',
        '"preview":null,"possibly_partial":false,"original_arguments":null,',
        '"earlier_copy_ended":null}},"seq":',
        '{"conversations":{"s1":[{"role":"user","content":"Goal of the whole run: ',
        "\\n\\nYour subtask (s1): ",
        '"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_',
        '","name":"","input":{}}]}]},"journal":true}',
        '"data":{"request":{"tier":"executor","system_sha256":"","messages":1,"input":',
        '{"role":"user","content":"","tools":[""]},"model":"claude-sonnet-4-',
        '","stop_reason":"tool_use","content":[{"type":"tool_use","id":"toolu_',
        '"usage":{"input_tokens":,"output_tokens":,"cache_write_tokens":,"cache_read_tokens":',
        '0},"cost_usd":0.00',
        '"kind":"run_claimed","actor":"airlock","at":"","data":{"worker":"","status":"queued",',
        '"attempt":1},"seq":1,"kind":"llm_call","actor":"airlock","at":"',
        '"data":{"approval_id":"apr_","risk":"high","subject":',
        '{"key_id":"","mac":"","run_id":"run_","ordinal":,"count":,"last_id":"evt_",',
        '"last_hash":"","last_kind":"approval_requested"}',
        '{"id":"run_","goal":"","requester":"U","status":"awaiting_approval",',
        '"created_at":"20","updated_at":"20","plan":{"subtasks":[{"id":"s1",',
        '"description":""}]},"spend":{"llm_calls":1,"input_tokens":,"output_tokens":,',
        '"cache_write_tokens":,"cache_read_tokens":,"cost_usd":0.00},"owner":"","version":',
        '{"id":"apr_","run_id":"run_","subject":{"subtask_id":"s1","tool":"","arguments":{',
        '},"tool_use_id":"toolu_","kind":"tool_call"},"risk":"high","requester":"U",',
        '"requested_at":"20","deadline":"20","digest":"","status":"pending"',
        '{"id":"evt_","run_id":"run_","kind":"approval_requested","actor":"airlock","at":"',
        '","seq":2,"prev_hash":"","hash":"","key_id":""}',
    )
).encode()


def compact(record: BaseModel) -> str:
    """``record`` as JSON without its default and ``None`` fields, if it reads back equal;
    otherwise whole."""
    whole = record.model_dump(mode="json", exclude_none=True)
    lean = record.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    _keep_tags(whole, lean)
    try:
        text = json.dumps(lean, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        same = type(record).model_validate_json(text) == record
    except ValueError:  # a float JSON has no text for; pydantic's ValidationError is one too
        return dump(record)
    return text if same else dump(record)


def _keep_tags(whole: Any, lean: Any) -> None:
    """Put back the ``kind`` of every object in ``lean`` that had one in ``whole``: it is a
    union's tag, which has a default but must be there to be read."""
    if isinstance(whole, dict) and isinstance(lean, dict):
        if "kind" in whole and "kind" not in lean:
            lean["kind"] = whole["kind"]
        for key, value in lean.items():
            if key in whole:
                _keep_tags(whole[key], value)
    elif isinstance(whole, list) and isinstance(lean, list) and len(whole) == len(lean):
        for full_item, lean_item in zip(whole, lean, strict=True):
            _keep_tags(full_item, lean_item)


def record_value(record: BaseModel) -> str:
    """``record`` as the Redis value that holds it: :func:`compact`, packed if shorter."""
    return pack(compact(record))


def pack(text: str) -> str:
    """``text`` deflated against :data:`DICTIONARY`, if that is shorter; else ``text``."""
    data = text.encode("utf-8")
    packed = _packed(data)
    return packed if len(packed) < len(data) else text  # in bytes, as Redis holds them


def _packed(data: bytes) -> str:
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    return _PACKED + base64.b64encode(deflate.compress(data) + deflate.flush()).decode("ascii")


def unpack(raw: str | bytes, *, limit: int = MAX_CHECKPOINT) -> str:
    """The text a Redis value holds: a packed value inflated, any other as it is.

    :class:`ValueError` if a value is unreadable (not written by airlock), is not UTF-8,
    or would expand past ``limit`` bytes.
    """
    if isinstance(raw, bytes):  # the store's client decodes replies; another may not
        raw = raw.decode("utf-8")
    if not raw.startswith(_PACKED):
        return raw
    try:
        return _unpacked(raw, limit).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("unreadable value: not text") from None


def _unpacked(raw: str, limit: int) -> bytes:
    try:
        packed = base64.b64decode(raw[1:], validate=True)
        inflate = zlib.decompressobj(-15, DICTIONARY)
        data = inflate.decompress(packed, limit)
    except (binascii.Error, zlib.error) as error:
        raise ValueError(f"unreadable value: {error}") from None
    if inflate.unconsumed_tail or not inflate.eof or inflate.unused_data:
        raise ValueError("unreadable value: truncated, or larger than any written")
    return data


def checkpoint_value(data: bytes) -> str:
    """``data`` as the Redis value that holds it: its text, or if shorter (or it is not
    text) its packed form, or from :data:`COMPRESS_FROM` bytes its zlib compression."""
    try:
        text: str | None = _TEXT + data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if len(data) >= COMPRESS_FROM:  # as before: zlib, fast on a long conversation
        packed = _ZLIB + base64.b64encode(zlib.compress(data, 1)).decode("ascii")
    else:  # a short one has nothing to refer back to but the dictionary
        packed = _packed(data)
    if text is None:
        return packed
    return packed if len(packed) < len(data) + 1 else text  # in bytes, as Redis holds them


def checkpoint_of(raw: str, *, limit: int = MAX_CHECKPOINT) -> bytes:
    """The checkpoint a Redis value holds, in any form this store has written.

    :class:`ValueError` if it holds none (it was not written by airlock), or would expand
    past ``limit`` bytes.
    """
    if raw.startswith(_TEXT):
        return raw[1:].encode("utf-8")
    if raw.startswith(_PACKED):
        try:
            return _unpacked(raw, limit)
        except ValueError as error:
            raise ValueError(f"unreadable checkpoint: {error}") from None
    if raw.startswith(_ZLIB):
        try:
            packed = base64.b64decode(raw[1:], validate=True)
            inflate = zlib.decompressobj()
            data = inflate.decompress(packed, limit)
        except (binascii.Error, zlib.error) as error:
            raise ValueError(f"unreadable checkpoint: {error}") from None
        if inflate.unconsumed_tail or not inflate.eof:
            raise ValueError("unreadable checkpoint: truncated, or larger than any written")
        return data
    return bytes.fromhex(raw)  # as every version before this one wrote it
