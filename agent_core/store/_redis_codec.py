"""How the Redis store writes records and checkpoints small, and reads every form it wrote.

Redis keeps each value in memory, so a parked run costs what its values weigh. Two
savings, each read back alongside the older form:

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

__all__ = ["COMPRESS_FROM", "MAX_CHECKPOINT", "checkpoint_of", "checkpoint_value", "compact"]

COMPRESS_FROM = 1024
"""Checkpoints of at least this many bytes are compressed when that makes them shorter;
below, base64's third more and zlib's header eat most of the saving."""

MAX_CHECKPOINT = 512 * 1024 * 1024
"""Bytes a compressed checkpoint may expand to (Redis's largest value): a tampered value
must not be able to inflate without bound in the reading process."""

_TEXT = "j"
_ZLIB = "z"


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


def checkpoint_value(data: bytes) -> str:
    """``data`` as the Redis value that holds it."""
    try:
        text: str | None = _TEXT + data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and len(data) < COMPRESS_FROM:
        return text
    packed = _ZLIB + base64.b64encode(zlib.compress(data, 1)).decode("ascii")
    return packed if text is None or len(packed) < len(text) else text


def checkpoint_of(raw: str, *, limit: int = MAX_CHECKPOINT) -> bytes:
    """The checkpoint a Redis value holds, in any form this store has written.

    :class:`ValueError` if it holds none (it was not written by airlock), or would expand
    past ``limit`` bytes.
    """
    if raw.startswith(_TEXT):
        return raw[1:].encode("utf-8")
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
