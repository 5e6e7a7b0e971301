"""Redaction benchmark: what masking secrets costs, per 10 KB of text.

    python -m bench.redaction [--n 300]

Medians of ``redact`` on 10 KB of ordinary ops text (log lines, ids, SHAs, URLs, prose) and
on 10 KB of secret-dense text (every line holds a secret, every kind in turn), each call on
a text it has not seen (so the cache of long strings never answers). Baselines from the
same run: the hand-written patterns ``redact`` used before (kept here verbatim), and the
detector with its keyword prefilter off. Also a run's checkpoint masked as it is saved: a
30-turn conversation the first time, then with one more turn (the strings it saw before
are cached).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from agent_core.secrets import find_secrets, redact
from agent_core.store.base import masked_checkpoint
from agent_core.testing.secret_samples import SAMPLES, ordinary_text, secret_dense_text

SIZE = 10_240


@dataclass(kw_only=True)
class Row:
    """One line of the result table."""

    what: str
    median: float
    p99: float
    baseline: float | None = None
    baseline_name: str = ""


# The patterns of agent_core.logs.redact before the detector replaced them: the baseline.
_TOKEN = re.compile(r"(xox[abposr]-|xapp-|sk-ant-|gh[pousr]_|github_pat_)[A-Za-z0-9-_]+")
_AWS_KEY_ID = re.compile(r"(AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])")
_NAMED = re.compile(
    r"(?i)((?:aws_secret_access_key|secret_access_key|password|passwd|client_secret|api_?key"
    r"|access_token|refresh_token|private_key)[\"']?\s*[=:]\s*[\"']?)[^\s\"',;]{8,}"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_PEM = re.compile(
    r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL
)


def old_redact(text: str) -> str:
    """The old ``redact``: five patterns, each run on the previous one's output."""
    text = _TOKEN.sub(lambda m: f"{m.group(1)}[redacted]", text)
    text = _AWS_KEY_ID.sub(lambda m: f"{m.group(1)}[redacted]", text)
    text = _NAMED.sub(lambda m: f"{m.group(1)}[redacted]", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}[redacted]", text)
    return _PEM.sub(lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY-----[redacted]", text)


def timed(n: int, text: str, work: Callable[[str], object]) -> list[float]:
    """Milliseconds of ``work`` on ``n`` variants of ``text`` (distinct, so never cached)."""
    samples = []
    for i in range(n):
        variant = f"{text}\n#{i}"
        start = time.perf_counter()
        work(variant)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _row(what: str, samples: list[float], base: list[float] | None, name: str = "") -> Row:
    ordered = sorted(samples)
    return Row(what=what, median=statistics.median(samples),
               p99=ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
               baseline=statistics.median(base) if base else None, baseline_name=name)  # fmt: skip


def _no_prefilter(text: str) -> object:
    return find_secrets(text, prefilter=False)


def text_rows(n: int) -> list[Row]:
    """``redact`` and the detector on 10 KB of each kind of text."""
    rows = []
    texts = {"ordinary": ordinary_text(SIZE), "secret-dense": secret_dense_text(SIZE)}
    for kind, text in texts.items():
        redact(text), old_redact(text)  # warm up: patterns compiled, code paths loaded
        rows.append(_row(f"redact 10 KB of {kind} text", timed(n, text, redact),
                         timed(n, text, old_redact), "old patterns"))  # fmt: skip
        rows.append(_row(f"find secrets in 10 KB of {kind} text", timed(n, text, find_secrets),
                         timed(n, text, _no_prefilter), "no prefilter"))  # fmt: skip
    return rows


def _conversation(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": ordinary_text(2000)}]
    for i in range(turns):
        call = {"type": "tool_use", "id": f"toolu_{i:04d}", "name": "read_file",
                "input": {"path": f"logs/{i}.txt"}}  # fmt: skip
        output = ordinary_text(3500) + "\n" + SAMPLES[i % len(SAMPLES)].text
        result = {"type": "tool_result", "tool_use_id": f"toolu_{i:04d}", "content": output}
        messages += [{"role": "assistant", "content": [call]},
                     {"role": "user", "content": [result]}]  # fmt: skip
    return messages


def checkpoint_rows(n: int) -> list[Row]:
    """A 30-turn checkpoint masked on its first save, and again with one more turn."""
    first, warm = [], []
    for i in range(n):
        messages = _conversation(30)
        messages[0]["content"] = f"{messages[0]['content']} #{i}"
        for turn in messages[1:]:  # fresh strings: nothing of this run is cached yet
            for block in turn["content"]:
                if block.get("type") == "tool_result":
                    block["content"] = f"{block['content']} #{i}"
        start = time.perf_counter()
        masked_checkpoint(json.dumps({"conversations": {"s1": messages}}).encode())
        first.append((time.perf_counter() - start) * 1000)
        messages += _conversation(1)[1:]
        start = time.perf_counter()
        masked_checkpoint(json.dumps({"conversations": {"s1": messages}}).encode())
        warm.append((time.perf_counter() - start) * 1000)
    size = len(json.dumps(_conversation(30))) // 1024
    return [
        _row(f"mask a {size} KB checkpoint (30 turns), first save", first, None),
        _row("mask it again with one more turn (strings seen before cached)", warm, None),
    ]


def measure(n: int) -> list[Row]:
    """Every row of this benchmark."""
    return text_rows(n) + checkpoint_rows(max(5, n // 20))


def render(rows: list[Row], n: int) -> Table:
    table = Table(title=f"airlock redaction, n={n}")
    for column in ("what", "median", "p99", "baseline", "baseline median", "ratio"):
        table.add_column(column, justify="left" if column in ("what", "baseline") else "right")
    for row in rows:
        base = "-" if row.baseline is None else f"{row.baseline:.3f} ms"
        ratio = "-" if row.baseline is None else f"{row.median / row.baseline:.2f}x"
        table.add_row(row.what, f"{row.median:.3f} ms", f"{row.p99:.3f} ms",
                      row.baseline_name or "-", base, ratio)  # fmt: skip
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="texts per measurement")
    count = parser.parse_args().n
    Console(width=140).print(render(measure(count), count))
