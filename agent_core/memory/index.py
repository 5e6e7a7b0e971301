"""The vectors of one memory scope: exact search while small, IVF-Flat once large.

The caller keeps one index per scope, so a search can never return another
scope's vectors. Vectors are L2-normalised, so the inner-product score is the cosine.

Up to ``ann_threshold`` live vectors the search is exact. Past it the vectors
move into an IVF-Flat index, chosen over HNSW by ``python -m bench.memory``: at
a million vectors on two cores it builds in well under a minute where HNSW
(M=16) took over four, and it removes vectors for real, so no tombstones are needed.
Each build sizes the lists to the data and calibrates ``nprobe`` against exact
search on a sample of the stored vectors, so the recall target holds for
whatever the embeddings look like. An IVF index whose live count has grown
``_REGROW`` times since its build is rebuilt, as its lists grow long and slow.

A saved file is verified (magic, sha256 over all that follows, dim, count)
before faiss sees a byte of it, because faiss can crash on garbage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np
from numpy.typing import NDArray

from agent_core.errors import IndexCorrupt

__all__ = ["VectorIndex"]

Kind = Literal["exact", "ivf"]

_MAGIC = b"AIRLOCK-VECTORS\n"
_FORMAT = 1
_PREFIX = struct.Struct("<16s32sI")  # magic, sha256 of everything after the prefix, header size
_K = 10
# Calibrate above the 0.95 goal: a sample of stored vectors is not the live queries.
_TARGET_RECALL = 0.97
_CALIBRATION_QUERIES = 128
_NPROBES = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
_REGROW = 4
_SEED = 20_240_601


@dataclass(kw_only=True, frozen=True)
class _Header:
    """What a saved file says about itself; the JSON between prefix and body."""

    format: int
    """File format version."""
    dim: int
    """Vector dimension."""
    kind: Kind
    """Which faiss index the body holds."""
    synced: int
    """Highest store sequence number the index holds."""
    count: int
    """Live vectors; the body starts with this many int64 ids."""
    built_at: int
    """Live count at the last IVF build (0 while exact)."""


class VectorIndex:
    """The vectors of one memory scope, searched by inner product; safe across threads.

    Search is exact up to ``ann_threshold`` live vectors and IVF-Flat past it.
    """

    def __init__(self, dim: int, *, ann_threshold: int = 20_000) -> None:
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.synced = 0
        """Highest store sequence number the index holds: set by the caller, saved, loaded."""
        self._lock = threading.Lock()
        self._index: faiss.IndexIDMap2 | faiss.IndexIVFFlat = faiss.IndexIDMap2(
            faiss.IndexFlatIP(dim)
        )
        self._ids: set[int] = set()
        self._built_at = 0

    @property
    def kind(self) -> Kind:
        """``"exact"`` or ``"ivf"``."""
        return "ivf" if isinstance(self._index, faiss.IndexIVFFlat) else "exact"

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: object) -> bool:
        return id in self._ids

    def __repr__(self) -> str:
        index = self._index
        probing = ""
        if isinstance(index, faiss.IndexIVFFlat):
            probing = f", nlist={index.nlist}, nprobe={index.nprobe}"
        return f"VectorIndex(dim={self.dim}, kind={self.kind!r}, live={len(self)}{probing})"

    def add(self, ids: Sequence[int] | NDArray[np.integer], vectors: NDArray[np.float32]) -> None:
        """Add ``vectors`` (n, dim) under ``ids``; an id present already is replaced.

        Crossing ``ann_threshold`` rebuilds into IVF-Flat inside this call, holding
        the lock: about a second at 20,000 vectors, half a minute at a million.
        """
        id_array, matrix = self._checked(ids, vectors)
        if not id_array.size:
            return
        with self._lock:
            self._remove_held(id_array)
            if self._needs_build(len(self._ids) + id_array.size):
                self._build(id_array, matrix)
            else:
                self._index.add_with_ids(matrix, id_array)
            self._ids.update(id_array.tolist())

    def remove(self, ids: Iterable[int]) -> None:
        """Remove ``ids``; ids the index does not hold are ignored."""
        with self._lock:
            self._remove_held(np.fromiter(set(ids), dtype=np.int64))

    def search(self, queries: NDArray[np.float32], k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to ``k`` ``(id, score)`` pairs, best first."""
        matrix = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if matrix.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (n, {self.dim}), not {matrix.shape}")
        with self._lock:
            k = min(k, len(self._ids))
            if k <= 0:
                return [[] for _ in matrix]
            scores, labels = self._index.search(matrix, k)
            if isinstance(self._index, faiss.IndexIVFFlat):
                _fill_short(self._index, matrix, scores, labels)
        return [
            [(i, s) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(labels.tolist(), scores.tolist(), strict=True)
        ]

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically: a reader sees the old file or the new one."""
        with self._lock:
            header = _Header(
                format=_FORMAT,
                dim=self.dim,
                kind=self.kind,
                synced=self.synced,
                count=len(self._ids),
                built_at=self._built_at,
            )
            ids = np.fromiter(self._ids, dtype=np.int64, count=len(self._ids))
            body = faiss.serialize_index(self._index)
        _write_atomic(path, _encode(header, ids, body))

    @classmethod
    def load(cls, path: Path, *, dim: int, ann_threshold: int = 20_000) -> VectorIndex:
        """Read an index saved by :meth:`save`; raise :class:`IndexCorrupt` if it is not sound."""
        data = path.read_bytes()
        header, ids, body = _decode(path, data, dim)
        loaded = cls(dim, ann_threshold=ann_threshold)
        loaded._index = _deserialize(path, header, body)
        loaded._ids = set(ids.tolist())
        loaded._built_at = header.built_at
        loaded.synced = header.synced
        return loaded

    def _checked(
        self, ids: Sequence[int] | NDArray[np.integer], vectors: NDArray[np.float32]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        id_array = np.asarray(ids, dtype=np.int64)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape (n, {self.dim}), not {matrix.shape}")
        if id_array.shape != (len(matrix),):
            raise ValueError(f"{id_array.size} ids for {len(matrix)} vectors")
        # An id given twice in one call keeps its last vector, as it would across calls.
        _, last_from_end = np.unique(id_array[::-1], return_index=True)
        if len(last_from_end) == len(id_array):
            return id_array, matrix
        keep = np.sort(len(id_array) - 1 - last_from_end)
        return id_array[keep], matrix[keep]

    def _remove_held(self, ids: NDArray[np.int64]) -> None:
        present = np.fromiter(self._ids.intersection(ids.tolist()), dtype=np.int64)
        if not present.size:
            return
        # IVF's hash-table direct map takes only an IDSelectorArray (one lookup per id);
        # the exact index scans its ids, where IDSelectorBatch is a hash test.
        ivf = isinstance(self._index, faiss.IndexIVFFlat)
        selector = faiss.IDSelectorArray if ivf else faiss.IDSelectorBatch
        self._index.remove_ids(selector(present.size, faiss.swig_ptr(present)))
        self._ids.difference_update(present.tolist())

    def _needs_build(self, count: int) -> bool:
        if isinstance(self._index, faiss.IndexIDMap2):
            return count > self.ann_threshold
        return count > _REGROW * self._built_at

    def _build(self, new_ids: NDArray[np.int64], new_vectors: NDArray[np.float32]) -> None:
        # The new vectors go straight into the new index, not through the old one.
        ids, vectors = new_ids, new_vectors
        if self._ids:
            held_ids, held = self._contents()
            ids, vectors = np.concatenate([held_ids, new_ids]), np.vstack([held, new_vectors])
        self._index = _ivf(ids, vectors)
        self._built_at = len(ids)

    def _contents(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        if isinstance(self._index, faiss.IndexIDMap2):
            ids = faiss.vector_to_array(self._index.id_map)
            return ids, self._index.index.reconstruct_n(0, len(ids))
        ids = np.fromiter(self._ids, dtype=np.int64, count=len(self._ids))
        return ids, self._index.reconstruct_batch(ids)


def _fill_short(
    index: faiss.IndexIVFFlat,
    matrix: NDArray[np.float32],
    scores: NDArray[np.float32],
    labels: NDArray[np.int64],
) -> None:
    # The probed lists held fewer than k vectors: scan every list for those queries.
    short = np.flatnonzero((labels < 0).any(axis=1))
    if short.size:
        scores[short], labels[short] = index.search(
            matrix[short], labels.shape[1], params=_probing(index.nlist)
        )


def _lists_for(count: int) -> int:
    """IVF lists for ``count`` vectors: about 2·√n, and 39 training points per list."""
    return max(1, min(round(2 * math.sqrt(count)), count // 39))


def _probing(nprobe: int) -> faiss.SearchParametersIVF:
    params = faiss.SearchParametersIVF()
    params.nprobe = nprobe
    return params


def _ivf(ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> faiss.IndexIVFFlat:
    count, dim = vectors.shape
    nlist = _lists_for(count)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    # 10 k-means rounds, not faiss's 25: training is 2.5 times faster and calibration
    # then picks one nprobe step more at most.
    index.cp.niter = 10
    rng = np.random.default_rng(_SEED)
    index.train(vectors[rng.choice(count, size=min(count, 40 * nlist), replace=False)])
    # A hash-table direct map makes removal and reconstruction one lookup per id.
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    index.add_with_ids(vectors, ids)
    index.nprobe = _calibrated_nprobe(index, ids, vectors)
    return index


def _calibrated_nprobe(
    index: faiss.IndexIVFFlat, ids: NDArray[np.int64], vectors: NDArray[np.float32]
) -> int:
    """The smallest nprobe whose recall@10 on a sample of stored vectors meets the target."""
    nlist = int(index.nlist)
    if nlist == 1:
        return 1
    rng = np.random.default_rng(_SEED)
    rows = rng.choice(len(ids), size=min(len(ids), _CALIBRATION_QUERIES), replace=False)
    queries, own = vectors[rows], ids[rows].tolist()
    # Each query is a stored vector, which finds itself: leave it out of both sides.
    _, positions = faiss.knn(queries, vectors, _K + 1, metric=faiss.METRIC_INNER_PRODUCT)
    truth = _neighbours(ids[positions], own)
    for nprobe in _NPROBES:
        if nprobe >= nlist:
            break
        _, found = index.search(queries, _K + 1, params=_probing(nprobe))
        if _recall(_neighbours(found, own), truth) >= _TARGET_RECALL:
            return nprobe
    return min(nlist, _NPROBES[-1])


def _neighbours(labels: NDArray[np.int64], own: list[int]) -> list[set[int]]:
    return [
        set([i for i in row if i not in (me, -1)][:_K])
        for row, me in zip(labels.tolist(), own, strict=True)
    ]


def _recall(found: list[set[int]], truth: list[set[int]]) -> float:
    hits = sum(len(f & t) for f, t in zip(found, truth, strict=True))
    return hits / max(1, sum(len(t) for t in truth))


def _encode(
    header: _Header, ids: NDArray[np.int64], body: NDArray[np.uint8]
) -> list[bytes | memoryview]:
    meta = json.dumps(asdict(header)).encode()
    rest: list[bytes | memoryview] = [struct.pack("<I", len(meta)), meta, ids.tobytes(), body.data]
    digest = hashlib.sha256()
    for chunk in rest:
        digest.update(chunk)
    return [_MAGIC, digest.digest(), *rest]


def _decode(path: Path, data: bytes, dim: int) -> tuple[_Header, NDArray[np.int64], memoryview]:
    """Split a saved file into header, ids and faiss bytes, checking all before faiss sees any."""
    if len(data) < _PREFIX.size or data[: len(_MAGIC)] != _MAGIC:
        raise IndexCorrupt(path, "no vector index header")
    magic, digest, size = _PREFIX.unpack_from(data)
    view = memoryview(data)
    if hashlib.sha256(view[len(magic) + len(digest) :]).digest() != digest:
        raise IndexCorrupt(path, "checksum mismatch: the file is truncated or altered")
    header = _parse_header(path, data[_PREFIX.size : _PREFIX.size + size], dim)
    start = _PREFIX.size + size
    end = start + 8 * header.count
    if end > len(data):
        raise IndexCorrupt(path, f"{header.count} ids announced, the file is shorter")
    return header, np.frombuffer(data, dtype=np.int64, count=header.count, offset=start), view[end:]


def _parse_header(path: Path, raw: bytes, dim: int) -> _Header:
    try:
        header = _Header(**json.loads(raw))
    except (ValueError, TypeError) as error:
        raise IndexCorrupt(path, f"unreadable header: {error}") from error
    if header.format != _FORMAT:
        raise IndexCorrupt(path, f"format {header.format}, this version reads {_FORMAT}")
    if header.dim != dim:
        raise IndexCorrupt(path, f"saved with dim {header.dim}, expected {dim}")
    if header.kind not in ("exact", "ivf") or min(header.count, header.synced) < 0:
        raise IndexCorrupt(path, f"implausible header {asdict(header)}")
    return header


def _deserialize(
    path: Path, header: _Header, body: memoryview
) -> faiss.IndexIDMap2 | faiss.IndexIVFFlat:
    try:
        index = faiss.deserialize_index(np.frombuffer(body, dtype=np.uint8))
    except RuntimeError as error:
        raise IndexCorrupt(path, f"faiss cannot read the index: {error}") from error
    expected = faiss.IndexIDMap2 if header.kind == "exact" else faiss.IndexIVFFlat
    if not isinstance(index, expected) or index.d != header.dim or index.ntotal != header.count:
        raise IndexCorrupt(path, "the faiss index does not match the header")
    return index


def _write_atomic(path: Path, chunks: Iterable[bytes | memoryview]) -> None:
    """Write ``chunks`` to ``path``: a crash at any point leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        # Best effort: the temp file is ours and half written; the old file was never touched.
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    # The rename is an entry in the folder: only an fsync of the folder makes it durable.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
