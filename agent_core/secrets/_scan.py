"""Finding secrets in text and masking them in one pass.

Every detector reads the original text, and the spans they find are merged before anything
is replaced: one detector never sees another's ``[redacted]``. (The old patterns ran one
after another on each other's output, so ``"private_key": "-----BEGIN…`` lost its BEGIN
line to the credential-by-name pattern and the key's body then matched nothing.)
"""

from __future__ import annotations

import json
import string
import threading
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

import ahocorasick

from agent_core.secrets._catalogue import CATALOGUE, Entry

__all__ = ["MASK", "Secret", "find", "generation", "mask", "register"]

MASK = "[redacted]"

_READABLE = frozenset(
    (
        *(f"xox{kind}-" for kind in "abcdeoprs"), "xoxe.xoxp-", "xapp-",
        *(f"https://hooks.slack.com/{path}/" for path in ("services", "workflows", "triggers")),
        "sk-ant-", "sk-proj-", "sk-svcacct-", "sk-admin-", "sk-",
        "sk_live_", "rk_live_", "sk_test_", "rk_test_", "whsec_",
        "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "gldt-", "glrt-",
        "AKIA", "ASIA", "ABIA", "ACCA", "AIza", "GOCSPX-", "ya29.", "npm_", "SG.", "sq0csp-",
        "pypi-", "AccountKey=",
    )
)  # fmt: skip
"""Prefixes that name a token's kind and are kept for readers (``xoxb-[redacted]``)."""
_READABLE_LENGTHS = sorted({len(prefix) for prefix in _READABLE}, reverse=True)

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

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
_generation = 0


def register(*values: str | None) -> None:
    """Also mask these exact values wherever they appear (the configured tokens and keys)."""
    global _generation
    _registered.add(values)
    _short_cache.cache_clear()
    _long_cache.cache_clear()
    _generation += 1


def generation() -> int:
    """How many times secrets were registered: an answer "nothing to mask" kept from an
    earlier generation may be wrong now."""
    return _generation


def find(text: str, *, prefilter: bool = True) -> list[Secret]:
    """Every secret in ``text``, merged, in order. ``prefilter=False`` runs every detector on
    the whole text instead of around its keywords (slower; the tests compare the two)."""
    found: list[tuple[int, int, bool]] = []
    if prefilter:
        scan = _Text(text)
        for entry in scan.entries():
            found += [(start, end, True) for start, end in scan.spans(entry)]
    else:
        for entry in CATALOGUE:
            found += [(start, end, True) for start, end in entry.spans(text)]
    found += [(start, end, False) for start, end in _registered.spans(text)]
    return _merged(text, found)


class _Text:
    """A text being scanned: every keyword's occurrences, found in one pass, and each
    detector run only in the windows around those of its own keywords."""

    def __init__(self, text: str) -> None:
        self.text = text
        lowered = text.lower()
        # Positions in the lower-cased text must be positions in the text.
        self.lowered = lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)
        self.hits: dict[str, list[int]] = {}
        for hay, automaton in ((self.lowered, _CASELESS), (text, _CASED)):
            for last, word in automaton.iter(hay):
                self.hits.setdefault(word, []).append(last - len(word) + 1)

    def entries(self) -> list[Entry]:
        """The detectors with a keyword in this text, and those that need none, in order."""
        wanted = {id(entry) for word in self.hits for entry in _BY_KEYWORD[word]}
        return [e for e in CATALOGUE if not e.keywords or id(e) in wanted]

    def spans(self, entry: Entry) -> list[tuple[int, int]]:
        if not entry.keywords:
            return list(entry.spans(self.text))
        if entry.needs and not any(word in self.hits for word in entry.needs):
            return []
        found: list[tuple[int, int]] = []
        for start, end in self._windows(entry):
            spans = list(entry.spans(self.text, start, end))
            cut = end < len(self.text) and not (entry.lines and self.text[end] == "\n")
            if cut and any(e >= end for _, e in spans):
                # A match reached the window's edge: follow it to the end of its line.
                spans = list(entry.spans(self.text, start, self._limit(entry, end)))
            found += spans
        return found

    def _windows(self, entry: Entry) -> list[tuple[int, int]]:
        text, size, near = self.text, len(self.text), entry.near
        windows = []
        for word in entry.keywords:
            width = len(word) + entry.after
            for at in self.hits.get(word, ()):
                if near is not None and not near(text, at):
                    continue
                start, end = max(0, at - entry.before), min(size, at + width)
                if entry.lines:
                    start = text.rfind("\n", start, at) + 1 or start
                    newline = text.find("\n", at, end)
                    end = end if newline == -1 else newline
                windows.append((start, end))
        windows.sort()
        merged: list[tuple[int, int]] = []
        for start, end in windows:
            if merged and start <= merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged

    def _limit(self, entry: Entry, end: int) -> int:
        newline = self.text.find("\n", end) if entry.lines else -1
        return len(self.text) if newline == -1 else newline


def _automaton(words: list[str]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, word)
    automaton.make_automaton()
    return automaton


_KEYWORDS = sorted({word for entry in CATALOGUE for word in (*entry.keywords, *entry.needs)})
_BY_KEYWORD = {word: [e for e in CATALOGUE if word in e.keywords] for word in _KEYWORDS}
# A keyword with a capital letter is looked for as it is; any other in the lower-cased text.
_CASED = _automaton([w for w in _KEYWORDS if any(c.isupper() for c in w)])
_CASELESS = _automaton([w for w in _KEYWORDS if not any(c.isupper() for c in w)])


def _merged(text: str, found: list[tuple[int, int, bool]]) -> list[Secret]:
    """Overlapping or touching spans as one. A kind's prefix stays readable only up to where
    a configured value starts (a configured value is masked whole)."""
    merged: list[Secret] = []
    group: list[tuple[int, int, bool]] = []
    end = -1
    for span in sorted(found):
        if group and span[0] > end:
            merged.append(_secret(text, group, end))
            group = []
        group.append(span)
        end = max(end, span[1]) if len(group) > 1 else span[1]
    if group:
        merged.append(_secret(text, group, end))
    return merged


def _secret(text: str, group: list[tuple[int, int, bool]], end: int) -> Secret:
    start = group[0][0]
    plain = min((s for s, _, readable in group if not readable), default=end)
    keep = next((n for n in _READABLE_LENGTHS if text[start : start + n] in _READABLE), 0)
    keep = keep if start + keep < end else 0
    return Secret(start=start, end=end, keep=min(keep, plain - start))


def mask(text: str) -> str:
    """``text`` with every secret replaced by ``[redacted]`` (a kind's prefix kept)."""
    # Checkpoints, audit events and log lines repeat the same strings again and again. The
    # caches hold at most 4096 short strings and 128 long ones (24 MB at worst).
    if len(text) <= 1024:
        return _short_cache(text)
    if len(text) <= 65_536:
        return _long_cache(text)
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


_short_cache = lru_cache(maxsize=4096)(_mask)
_long_cache = lru_cache(maxsize=128)(_mask)
