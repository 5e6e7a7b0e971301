"""VectorIndex on real faiss: search, replace, remove, the switch to IVF, and its file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from agent_core.errors import IndexCorrupt
from agent_core.memory.index import VectorIndex
from tests.support import load_factor

REPO = Path(__file__).resolve().parents[2]
DIM = 64
Vectors = NDArray[np.float32]


def normalised(matrix: NDArray[np.floating]) -> Vectors:
    unit: Vectors = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    return unit


def axis(i: int) -> Vectors:
    return np.eye(DIM, dtype=np.float32)[i : i + 1]


def clustered(n: int, *, seed: int) -> Vectors:
    """Embedding-like data: a Gaussian mixture in 16 dimensions projected to DIM, plus noise."""
    shape = np.random.default_rng(0)
    centres = shape.standard_normal((200, 16))
    projection = shape.standard_normal((16, DIM))
    rng = np.random.default_rng(seed)
    latent = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, 16))
    return normalised(latent @ projection + 0.1 * rng.standard_normal((n, DIM)))


def filled(kind: str) -> VectorIndex:
    """An index of the given kind holding 300 random vectors under ids 10,000 and up."""
    index = VectorIndex(DIM, ann_threshold=10_000 if kind == "exact" else 200)
    filler = normalised(np.random.default_rng(7).standard_normal((300, DIM)))
    index.add(range(10_000, 10_300), filler)
    assert index.kind == kind
    return index


def top_ids(index: VectorIndex, query: Vectors, k: int = 1) -> list[int]:
    return [i for i, _ in index.search(query, k)[0]]


def test_search_returns_ids_best_first_with_cosine_scores() -> None:
    index = VectorIndex(DIM)
    index.add([1, 2, 3], np.vstack([axis(0), normalised(axis(0) + axis(1)), axis(1)]))
    [hits] = index.search(axis(0), 3)
    assert [i for i, _ in hits] == [1, 2, 3]
    assert [s for _, s in hits] == pytest.approx([1.0, 0.5**0.5, 0.0], abs=1e-6)
    assert index.kind == "exact"


def test_a_small_index_returns_fewer_than_k() -> None:
    index = VectorIndex(DIM)
    index.add([], np.empty((0, DIM), dtype=np.float32))
    assert index.search(axis(0), 10) == [[]]
    index.add([1, 2], np.vstack([axis(0), axis(1)]))
    assert len(index.search(np.vstack([axis(0), axis(1)]), 10)[1]) == 2


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_re_adding_an_id_replaces_its_vector(kind: str) -> None:
    index = filled(kind)
    index.add([1], axis(0))
    index.add([1], axis(1))
    assert len(index) == 301
    [(top, score)] = index.search(axis(1), 1)[0]
    assert top == 1 and score == pytest.approx(1.0)
    assert 1 not in top_ids(index, axis(0), 5)
    index.add([2, 2], np.vstack([axis(2), axis(3)]))
    assert top_ids(index, axis(3)) == [2]
    assert len(index) == 302


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_removed_ids_are_never_returned(kind: str) -> None:
    index = filled(kind)
    index.add([1, 2], np.vstack([axis(0), axis(1)]))
    index.remove([1, 99, 1])
    assert 1 not in index and 2 in index and len(index) == 301
    assert 1 not in top_ids(index, axis(0), len(index))
    assert top_ids(index, axis(1)) == [2]


def test_an_ivf_index_of_a_few_vectors_still_answers() -> None:
    index = VectorIndex(DIM, ann_threshold=0)
    index.add(range(5), np.vstack([axis(i) for i in range(5)]))
    assert index.kind == "ivf"
    assert top_ids(index, normalised(axis(3) + 0.5 * axis(1)), 2) == [3, 1]


def test_an_ivf_search_still_fills_k_when_the_probed_lists_hold_fewer() -> None:
    index = filled("ivf")
    assert len(index.search(axis(0), len(index))[0]) == len(index)


def test_growing_past_the_threshold_switches_to_ivf_and_keeps_recall() -> None:
    data, queries = clustered(8_000, seed=1), clustered(200, seed=2)
    index = VectorIndex(DIM, ann_threshold=1_000)
    index.add(range(1_000), data[:1_000])
    kinds = [index.kind]
    # 500 at a time: the switch at 1,500 and a rebuild past four times that.
    for start in range(1_000, len(data), 500):
        index.add(range(start, start + 500), data[start : start + 500])
    kinds.append(index.kind)
    assert kinds == ["exact", "ivf"] and len(index) == len(data)
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    found = [{i for i, _ in hits} for hits in index.search(queries, 10)]
    recall = np.mean([len(f & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_save_and_load_keep_ids_synced_and_removals(kind: str, tmp_path: Path) -> None:
    index = filled(kind)
    index.add([1, 2], np.vstack([axis(0), axis(1)]))
    index.remove([2, 10_005])
    index.synced = 42
    path = tmp_path / "scopes" / "team.vectors"
    index.save(path)
    loaded = VectorIndex.load(path, dim=DIM)
    assert (loaded.kind, loaded.synced, len(loaded)) == (kind, 42, 300)
    assert 1 in loaded and 2 not in loaded and 10_005 not in loaded
    queries = clustered(20, seed=3)
    assert loaded.search(queries, 10) == index.search(queries, 10)
    loaded.remove([1])
    loaded.add([3], axis(2))
    assert top_ids(loaded, axis(2)) == [3] and 1 not in top_ids(loaded, axis(0), 10)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "team.vectors"
    filled("ivf").save(path)
    return path


@pytest.mark.parametrize("keep", [0, 10, 47, 60, 3_000, -1])
def test_a_truncated_file_is_corrupt(saved: Path, keep: int) -> None:
    saved.write_bytes(saved.read_bytes()[:keep])
    with pytest.raises(IndexCorrupt) as raised:
        VectorIndex.load(saved, dim=DIM)
    assert raised.value.path == saved


@pytest.mark.parametrize("at", [0, 20, 49, 60, 200, 3_000, -1])
def test_a_flipped_byte_is_corrupt(saved: Path, at: int) -> None:
    data = bytearray(saved.read_bytes())
    data[at] ^= 0x10
    saved.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt):
        VectorIndex.load(saved, dim=DIM)


def test_garbage_after_a_valid_magic_is_corrupt(saved: Path) -> None:
    saved.write_bytes(saved.read_bytes()[:16] + np.random.default_rng(0).bytes(5_000))
    with pytest.raises(IndexCorrupt):
        VectorIndex.load(saved, dim=DIM)


def test_a_file_of_another_dimension_is_corrupt(saved: Path) -> None:
    with pytest.raises(IndexCorrupt, match="dim 64, expected 32"):
        VectorIndex.load(saved, dim=32)


def test_a_missing_file_is_not_corruption(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        VectorIndex.load(tmp_path / "none.vectors", dim=DIM)


@pytest.mark.processes
def test_a_save_that_fails_midway_leaves_the_old_file(saved: Path) -> None:
    before = saved.read_bytes()
    # A file size limit makes the write of the larger new index fail part-way; it
    # binds root too, unlike a read-only folder.
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        import numpy as np
        from agent_core.memory.index import VectorIndex
        index = VectorIndex({DIM})
        index.add(range(5_000), np.ones((5_000, {DIM}), dtype=np.float32))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        try:
            index.save(Path({str(saved)!r}))
        except OSError as error:
            sys.exit(f"save failed: {{error.strerror}}")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
        timeout=60 * load_factor(),
    )  # fmt: skip
    assert done.returncode == 1 and "save failed: File too large" in done.stderr
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]
    assert len(VectorIndex.load(saved, dim=DIM)) == 300


def test_concurrent_adds_and_searches_lose_nothing() -> None:
    index = VectorIndex(DIM, ann_threshold=1_000)
    data = clustered(4_000, seed=4)

    def add(chunk: int) -> None:
        ids = range(chunk * 250, chunk * 250 + 250)
        index.add(ids, data[ids.start : ids.stop])
        index.search(data[ids.start : ids.start + 5], 10)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(add, range(16)))
    assert len(index) == 4_000 and index.kind == "ivf"
    assert all(top_ids(index, data[i : i + 1]) == [i] for i in range(0, 4_000, 97))
