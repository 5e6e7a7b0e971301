"""all-MiniLM-L6-v2 run by ONNX Runtime, from an ONNX file built once from the packaged weights.

The packaged model ships PyTorch weights only. The first load exports them (the
transformer, mean pooling and L2 normalisation, as one graph) with ``torch.onnx``
into a cache folder, checks the exported graph against PyTorch on probe texts,
and keeps the file under a name that hashes the model files, so a new model
version builds a new file. Nothing is downloaded: the weights, tokenizer and
configuration come from site-packages.

Why: a single query through sentence-transformers on PyTorch costs about 14 ms
of CPU here, through ONNX Runtime about 5 ms, for the same vector (cosine
0.9999998, measured by ``python -m bench.memory_recall``). Vectors stored by the
PyTorch path stay comparable, so existing indexes need no migration.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = [
    "WIDE_FROM",
    "ExportFailed",
    "OnnxEncoder",
    "default_cache_dir",
    "onnx_file",
    "usable_cores",
]

# Bump when the exported graph changes shape or meaning: old files are then ignored.
_EXPORT_VERSION = 1
_HASHED = ("model.safetensors", "config.json", "tokenizer.json", "1_Pooling/config.json")
_PROBES = (
    "restart the web tier",
    "what is the disk usage on db-1?",
    "",
    "ünïcödé — 数据库 🚀",
    "a longer sentence about the billing service and its database replicas " * 8,
)
# The exported graph must give PyTorch's vectors: anything less would make stored
# vectors (embedded by either path) disagree with queries.
_MIN_PROBE_COSINE = 0.9999


class ExportFailed(Exception):
    """The ONNX graph could not be built or did not reproduce PyTorch's vectors."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/airlock`` (``~/.cache/airlock`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "airlock"


def onnx_file(model_path: Path, cache_dir: Path) -> Path:
    """The ONNX file of the model at ``model_path``, built into ``cache_dir`` if missing."""
    path = cache_dir / f"all-MiniLM-L6-v2-{_fingerprint(model_path)}.onnx"
    if not path.is_file():
        _export(model_path, path)
    return path


class OnnxEncoder:
    """Texts to L2-normalised mean-pooled vectors, as sentence-transformers computes them.

    Every run is on one thread. A batch of :data:`WIDE_FROM` texts or more is cut into
    parts that ``threads`` threads take in turn, running the same session at once (ONNX
    Runtime allows that, and a one-thread session runs on its caller's thread). Parts,
    not the session's own thread pool: that pool splits every operator across its
    threads and waits for the slowest, so one thread held up by other work on a shared
    machine stalls them all (a two-thread pool embedded 100 texts a second against one
    thread's 160 when another process held a core; parts fall back to one thread's pace).
    """

    def __init__(self, model_path: Path, onnx_path: Path, *, threads: int = 0) -> None:
        import onnxruntime as ort

        self.tokenizer = _tokenizer(model_path)
        options = ort.SessionOptions()
        # One thread: a query is a handful of tokens, too small to split, and on a
        # shared two-core machine a second thread waits for a busy core at p99.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session: onnxruntime.InferenceSession = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.threads = threads if threads > 0 else usable_cores()
        """Threads a batch of :data:`WIDE_FROM` texts or more is embedded on."""
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int) -> NDArray[np.float32]:
        """Embed ``texts`` in batches of ``batch_size``."""
        parts = [
            self._batch(texts[start : start + batch_size])
            for start in range(0, len(texts), batch_size)
        ]
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)

    def _batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if len(texts) < WIDE_FROM or self.threads == 1:
            return self._run(texts)
        # Twice as many parts as threads, so a thread slowed by other work takes fewer.
        size = max(WIDE_FROM // 2, -(-len(texts) // (2 * self.threads)))
        parts = [texts[start : start + size] for start in range(0, len(texts), size)]
        return np.vstack(list(self._threads().map(self._run, parts)))

    def _run(self, texts: Sequence[str]) -> NDArray[np.float32]:
        encoded = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (vectors,) = self.session.run(["embedding"], feeds)
        return np.asarray(vectors, dtype=np.float32)

    def _threads(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="airlock-onnx")
            return self._pool


WIDE_FROM = 8
"""Texts in a batch from which it is spread over threads; fewer run on one."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` without one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _tokenizer(model_path: Path) -> Tokenizer:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    # tokenizer.json says 128 tokens, padded to 128; sentence-transformers truncates at
    # the model's max_seq_length (256) and pads to the longest text of the batch.
    config = json.loads((model_path / "sentence_bert_config.json").read_text())
    tokenizer.enable_truncation(int(config["max_seq_length"]))
    pad = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=0 if pad is None else pad, pad_token="[PAD]")
    return tokenizer


def _fingerprint(model_path: Path) -> str:
    digest = hashlib.sha256(f"export {_EXPORT_VERSION}\n".encode())
    for name in _HASHED:
        digest.update(name.encode() + b"\0")
        with (model_path / name).open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _export(model_path: Path, path: Path) -> None:
    """Export, check and atomically place the ONNX file at ``path``."""
    pooling = json.loads((model_path / "1_Pooling" / "config.json").read_text())
    modes = {key for key, on in pooling.items() if key.startswith("pooling_mode") and on}
    if modes != {"pooling_mode_mean_tokens"}:
        raise ExportFailed(f"the graph does mean pooling, the model asks for {sorted(modes)}")
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    bert = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()
    pooled = _pooled_module(bert).eval()
    tokenizer = _tokenizer(model_path)
    feeds = _feeds(tokenizer, _PROBES)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter warns that it is the legacy one and that its trace
            # fixes Python-side branches; the probe check below is what guards the result.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                pooled,
                tuple(torch.from_numpy(feeds[name]) for name in _INPUTS),
                temp,
                input_names=list(_INPUTS),
                output_names=["embedding"],
                dynamic_axes={
                    **{name: {0: "batch", 1: "tokens"} for name in _INPUTS},
                    "embedding": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        with torch.inference_mode():
            expected = pooled(*(torch.from_numpy(feeds[name]) for name in _INPUTS)).numpy()
        _check(Path(temp), model_path, expected)
        os.replace(temp, path)
    except Exception as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(error, ExportFailed):
            raise
        raise ExportFailed(f"exporting the model to ONNX failed: {error}") from error


_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _feeds(tokenizer: Tokenizer, texts: Sequence[str]) -> dict[str, NDArray[np.int64]]:
    encoded = tokenizer.encode_batch(list(texts))
    ids = np.array([e.ids for e in encoded], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _check(onnx_path: Path, model_path: Path, expected: NDArray[np.float32]) -> None:
    """Refuse a graph whose vectors for the probes (one padded batch, then alone) differ."""
    encoder = OnnxEncoder(model_path, onnx_path)
    together = encoder.encode(_PROBES, batch_size=len(_PROBES))
    alone = np.vstack([encoder.encode([text], batch_size=1) for text in _PROBES])
    for got in (together, alone):
        worst = float(np.min(np.sum(got * expected, axis=1)))
        if worst < _MIN_PROBE_COSINE:
            raise ExportFailed(f"the ONNX graph's vectors differ from PyTorch's (cosine {worst})")


def _pooled_module(bert: Any) -> Any:
    import torch

    class Pooled(torch.nn.Module):
        """The transformer, mean pooling over real tokens, and L2 normalisation."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return Pooled()
