"""Token usage of the Anthropic stand-in: a deterministic estimate and a simulated prompt cache.

Tokens are estimated at about four characters each. The prompt is cut into segments (each
tool, system block and message block, in that order); a `cache_control` breakpoint caches
the prefix up to its segment, and a later request reads the longest live prefix it shares.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeAlias

from agent_core.testing._anthropic_script import JSONObject, blocks
from agent_core.testing._anthropic_wire import RequestError

__all__ = [
    "CacheTTL",
    "PromptCache",
    "Segment",
    "Usage",
    "block_text",
    "estimate_tokens",
    "input_tokens",
    "prompt_segments",
]

CacheTTL: TypeAlias = Literal["5m", "1h"]

_TTL_SECONDS: Mapping[CacheTTL, float] = {"5m": 300.0, "1h": 3600.0}
_MAX_BREAKPOINTS = 4
# The real API looks this many blocks back from a breakpoint for an earlier cache entry.
_LOOKBACK_BLOCKS = 20


def estimate_tokens(text: str) -> int:
    """Deterministic token estimate: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def block_text(block: JSONObject) -> str:
    """The text a block is counted by: its text, or its JSON for any other block."""
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    return json.dumps(block, sort_keys=True)


def input_tokens(body: JSONObject) -> int:
    """Estimated input tokens of a Messages request body (tools, system and messages)."""
    return sum(segment.tokens for segment in prompt_segments(body))


@dataclass(kw_only=True, frozen=True)
class Segment:
    """One cacheable unit of the prompt: a tool, a system block or a message block."""

    tokens: int
    """Estimated tokens of this unit."""
    canonical: str
    """Stable text that identifies the unit (role and block, without cache_control)."""
    ttl: CacheTTL | None
    """The cache TTL when the unit carries a breakpoint."""


@dataclass(kw_only=True)
class Usage:
    """Input-side usage of one request."""

    input_tokens: int
    """Tokens after the last cache breakpoint, or all when nothing is cached."""
    created: dict[CacheTTL, int] = field(default_factory=lambda: {"5m": 0, "1h": 0})
    """Tokens written to the cache, by TTL."""
    read: int = 0
    """Tokens read from the cache."""

    def to_json(self, output_tokens: int) -> JSONObject:
        """The `usage` object of a message."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": sum(self.created.values()),
            "cache_read_input_tokens": self.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.created["5m"],
                "ephemeral_1h_input_tokens": self.created["1h"],
            },
            "service_tier": "standard",
        }


class PromptCache:
    """Prefix cache keyed by a running hash of the prompt, with TTLs on an injected clock."""

    def __init__(self, *, clock: Callable[[], float], min_tokens: int) -> None:
        self._clock = clock
        self._min_tokens = min_tokens
        self._expiry: dict[str, float] = {}

    def account(self, model: str, segments: list[Segment]) -> Usage:
        """Usage of one request; writes its breakpoints and refreshes the prefix it read."""
        now = self._clock()
        keys = _prefix_keys(model, segments)
        totals = list(itertools.accumulate(s.tokens for s in segments))
        marks = [i for i, s in enumerate(segments) if s.ttl is not None]
        hit = self._longest_hit(keys, marks, now)
        usage = Usage(input_tokens=0, read=totals[hit] if hit >= 0 else 0)
        done = usage.read
        for mark in marks:
            ttl = segments[mark].ttl or "5m"
            if totals[mark] < self._min_tokens:
                continue
            self._expiry[keys[mark]] = now + _TTL_SECONDS[ttl]
            if mark > hit:
                usage.created[ttl] += totals[mark] - done
                done = totals[mark]
        if hit >= 0:
            self._expiry[keys[hit]] = max(self._expiry[keys[hit]], now + _TTL_SECONDS["5m"])
        usage.input_tokens = (totals[-1] if totals else 0) - done
        return usage

    def _longest_hit(self, keys: list[str], marks: list[int], now: float) -> int:
        hits = [-1]
        for mark in marks:
            window = range(mark, max(mark - _LOOKBACK_BLOCKS, -1), -1)
            hits.extend(itertools.islice((i for i in window if self._alive(keys[i], now)), 1))
        return max(hits)

    def _alive(self, key: str, now: float) -> bool:
        return self._expiry.get(key, -math.inf) > now


def _prefix_keys(model: str, segments: list[Segment]) -> list[str]:
    digest = hashlib.sha256(model.encode())
    keys = []
    for segment in segments:
        digest.update(segment.canonical.encode())
        keys.append(digest.copy().hexdigest())
    return keys


def _segment(role: str, block: JSONObject) -> Segment:
    bare = {k: v for k, v in block.items() if k != "cache_control"}
    mark = block.get("cache_control")
    return Segment(
        tokens=estimate_tokens(block_text(bare)),
        canonical=json.dumps([role, bare], sort_keys=True),
        ttl=_ttl(mark) if mark is not None else None,
    )


def _ttl(mark: object) -> CacheTTL:
    ttl: object = mark.get("ttl", "5m") if isinstance(mark, dict) else None
    if ttl == "5m":
        return "5m"
    if ttl == "1h":
        return "1h"
    raise RequestError(
        400, f"cache_control: expected {{'type': 'ephemeral', 'ttl': '5m'|'1h'}}, got {mark!r}"
    )


def prompt_segments(body: JSONObject) -> list[Segment]:
    """The prompt of a request body as segments; raises `RequestError` on bad breakpoints."""
    segments = [_segment("tool", tool) for tool in blocks(body.get("tools"))]
    segments += [_segment("system", block) for block in blocks(body.get("system"))]
    for message in blocks(body.get("messages")):
        role = str(message.get("role"))
        segments += [_segment(role, block) for block in blocks(message.get("content"))]
    top = body.get("cache_control")
    if top is not None and segments and segments[-1].ttl is None:
        segments[-1] = replace(segments[-1], ttl=_ttl(top))
    found = sum(1 for s in segments if s.ttl is not None)
    if found > _MAX_BREAKPOINTS:
        raise RequestError(
            400,
            f"A maximum of {_MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}.",
        )
    return segments
