"""Finding secrets in text and masking them in one pass.

Every detector reads the original text, and the spans they find are merged before anything
is replaced: one detector never sees another's ``[redacted]``. (The old patterns ran one
after another on each other's output, so ``"private_key": "-----BEGIN…`` lost its BEGIN
line to the credential-by-name pattern and the key's body then matched nothing.)
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from agent_core.secrets._catalogue import CATALOGUE

__all__ = ["MASK", "Secret", "find", "mask", "register"]

MASK = "[redacted]"

_READABLE = sorted(
    (
        *(f"xox{kind}-" for kind in "abcdeoprs"), "xoxe.xoxp-", "xapp-",
        *(f"https://hooks.slack.com/{path}/" for path in ("services", "workflows", "triggers")),
        "sk-ant-", "sk-proj-", "sk-svcacct-", "sk-admin-", "sk-",
        "sk_live_", "rk_live_", "sk_test_", "rk_test_", "whsec_",
        "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "gldt-", "glrt-",
        "AKIA", "ASIA", "ABIA", "ACCA", "AIza", "GOCSPX-", "ya29.", "npm_", "SG.", "sq0csp-",
        "pypi-", "AccountKey=",
    ),
    key=len,
    reverse=True,
)  # fmt: skip
"""Prefixes that name a token's kind and are kept for readers (``xoxb-[redacted]``)."""

_MIN_REGISTERED = 8
"""Shorter configured values would mask ordinary words; real secrets are long."""


@dataclass(kw_only=True, frozen=True)
class Secret:
    """Where a secret is in a text, and how much of its start may stay readable."""

    start: int
    end: int
    keep: int = 0
    """Characters at the start left as they are: the kind of token, such as ``xoxb-``."""


class _Registered:
    """The configured secrets, matched exactly, as written and as they appear escaped."""

    def __init__(self) -> None:
        self.values: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, values: tuple[str | None, ...]) -> None:
        forms = set()
        for value in values:
            if value is None or len(value) < _MIN_REGISTERED:
                continue
            # In a JSON string, a repr or a URL the same secret is spelled differently.
            forms |= {value, json.dumps(value)[1:-1], repr(value)[1:-1], quote(value, safe="")}
        with self._lock:
            merged = set(self.values) | {f for f in forms if len(f) >= _MIN_REGISTERED}
            self.values = tuple(sorted(merged, key=len, reverse=True))

    def spans(self, text: str) -> list[tuple[int, int]]:
        found = []
        for value in self.values:
            at = text.find(value)
            while at != -1:
                found.append((at, at + len(value)))
                at = text.find(value, at + 1)
        return found


_registered = _Registered()


def register(*values: str | None) -> None:
    """Also mask these exact values wherever they appear (the configured tokens and keys)."""
    _registered.add(values)
    _cached_mask.cache_clear()


def find(text: str, *, prefilter: bool = True) -> list[Secret]:
    """Every secret in ``text``, merged, in order. ``prefilter=False`` runs every detector
    whatever the text's keywords (slower; the tests compare the two)."""
    lowered = text.lower()
    found: list[tuple[int, int, bool]] = []
    for entry in CATALOGUE:
        if not prefilter or entry.wanted(text, lowered):
            found += [(start, end, True) for start, end in entry.spans(text)]
    found += [(start, end, False) for start, end in _registered.spans(text)]
    return _merged(text, found)


def _merged(text: str, found: list[tuple[int, int, bool]]) -> list[Secret]:
    """Overlapping or touching spans as one. A kind's prefix stays readable only up to where
    a configured value starts (a configured value is masked whole)."""
    groups: list[list[tuple[int, int, bool]]] = []
    for span in sorted(found):
        if groups and span[0] <= max(e for _, e, _ in groups[-1]):
            groups[-1].append(span)
        else:
            groups.append([span])
    return [_secret(text, group) for group in groups]


def _secret(text: str, group: list[tuple[int, int, bool]]) -> Secret:
    start, end = group[0][0], max(e for _, e, _ in group)
    plain = min((s for s, _, readable in group if not readable), default=end)
    value = text[start:end]
    keep = next((len(p) for p in _READABLE if value.startswith(p) and len(value) > len(p)), 0)
    return Secret(start=start, end=end, keep=min(keep, plain - start))


def mask(text: str) -> str:
    """``text`` with every secret replaced by ``[redacted]`` (a kind's prefix kept)."""
    if 256 <= len(text) <= 65_536:
        # Checkpoints and audit events repeat the same long strings save after save.
        return _cached_mask(text)
    return _mask(text)


def _mask(text: str) -> str:
    found = find(text)
    if not found:
        return text
    parts, at = [], 0
    for secret in found:
        parts += [text[at : secret.start + secret.keep], MASK]
        at = secret.end
    parts.append(text[at:])
    return "".join(parts)


_cached_mask = lru_cache(maxsize=1024)(_mask)
