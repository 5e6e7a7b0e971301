"""One detector for secrets, applied on the way into every sink.

What counts as a secret: whatever detect-secrets' plugins (Yelp's, used as a library) find,
what airlock's own detectors in the same plugin shape find where those miss (Slack session
and app tokens, Anthropic and current OpenAI keys, Google keys, credentials given by name,
Authorization headers, URL passwords, bare AWS secret keys near an AWS word or key id, and
private keys whole), and the configured secrets (:func:`register_secrets`), matched exactly.
A keyword prefilter decides which detectors a text needs, so ordinary text costs little.

The sinks that call :func:`redact` or :func:`redact_value`: the audit trail, log lines, Slack
messages, the terminal, span attributes, the stored run and its checkpoint, session facts and
long-term memory. ``agent_core.logs`` re-exports these names for older callers.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from agent_core.secrets._scan import MASK, Secret, find, generation, mask, register

__all__ = [
    "MASK",
    "Secret",
    "contains_secret",
    "find_secrets",
    "generation",
    "redact",
    "redact_value",
    "redact_value_or_same",
    "register_secrets",
    "secret_name",
]

_NOTHING: Any = object()
"""No earlier clean value to compare with."""
_NO_KEYS: dict[Any, Any] = {}

_SECRET_NAME = re.compile(
    r"(?i)(?:^|[^a-z])(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey"
    r"|access[_-]?key|private[_-]?key|signing[_-]?key|authorization|cookie|credentials?)$"
)
"""A mapping key whose string value is a secret whatever it looks like (``"password"``,
``"GITHUB_TOKEN"``, ``"x-api-key"``, ``"Authorization"``); ``max_tokens`` is not one."""


def find_secrets(text: str, *, prefilter: bool = True) -> list[Secret]:
    """Where the secrets in ``text`` are, in order, overlapping finds merged."""
    return find(text, prefilter=prefilter)


def contains_secret(text: str) -> bool:
    """Whether ``text`` holds anything :func:`redact` would mask."""
    return bool(find(text))


def redact(text: str) -> str:
    """``text`` with every secret replaced by ``[redacted]``; a token's kind prefix
    (``xoxb-``, ``sk-ant-``, ``ghp_``, ``AKIA``…) is kept, a configured value masked whole,
    a private key masked from its header to its END line (or the end, if cut short)."""
    return mask(text)


def redact_value(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with every string redacted; the string
    value of a key that names a credential (``password``, ``api_key``, ``Authorization``…)
    is masked whole."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _field(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def redact_value_or_same(value: Any, *, clean: Any = _NOTHING) -> Any:
    """What :func:`redact_value` returns, except that ``value`` itself comes back (not a
    copy) when nothing in it changed, and so does every dict or list inside it that nothing
    changed in: ``redact_value_or_same(v) is v`` says ``v`` holds no secret, without a second
    walk comparing the copy with it. For values nobody mutates afterwards (a record just
    dumped, a checkpoint just parsed).

    ``clean``: an earlier value that this returned as it was (it held nothing to mask), in
    the same :func:`generation` of secrets. The parts of ``value`` equal to their
    counterparts in it (under the same key, at the same place in a list) hold nothing to
    mask either, and are compared instead of walked: for a record saved again and again
    with a few parts changed or added. The answer is the same with or without it."""
    if clean is not _NOTHING and value == clean:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        known = clean if isinstance(clean, dict) else _NO_KEYS
        items = []
        changed = False
        for k, v in value.items():
            name = str(k)
            earlier = known.get(k, _NOTHING)
            # A key of the clean value was found clean (a str, which masking left as it was).
            key = k if earlier is not _NOTHING else redact(name)
            if isinstance(v, str) and v and v != MASK and secret_name(name):
                new: Any = MASK
            else:
                new = redact_value_or_same(v, clean=earlier)
            # A masked string may be an equal object other than the one given (the cache
            # hands back the first one it saw); a dict or list is the same one when unchanged.
            changed = changed or _changed(k, key) or _changed(v, new)
            items.append((key, new))
        return dict(items) if changed else value
    if isinstance(value, list):
        if isinstance(clean, list) and clean:
            masked = [redact_value_or_same(v, clean=c) for v, c in zip(value, clean, strict=False)]
            masked += [redact_value_or_same(v) for v in value[len(clean) :]]
        else:
            masked = [redact_value_or_same(v) for v in value]
        return masked if any(map(_changed, value, masked)) else value
    if isinstance(value, tuple):  # redact_value makes it a list: a change
        return [redact_value_or_same(v) for v in value]
    return value


def _changed(old: Any, new: Any) -> bool:
    return new is not old and (not isinstance(new, str) or new != old)


def secret_name(name: str) -> bool:
    """Whether a setting, variable or field called ``name`` holds a credential."""
    return _secret_name(name)


@lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    # The same few field names are asked about for every string in every record walked.
    return _SECRET_NAME.search(name) is not None


def _field(key: str, value: Any) -> Any:
    if isinstance(value, str) and value and value != MASK and secret_name(key):
        return MASK
    return redact_value(value)


def register_secrets(*values: str | None) -> None:
    """Also mask these exact values wherever they appear (the configured tokens and keys);
    values shorter than 8 characters are ignored."""
    register(*values)
