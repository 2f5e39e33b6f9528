"""FAISS vector index over normalised embeddings (inner product = cosine)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from qa.settings import IndexKind


def choose_kind(kind: IndexKind, size: int, hnsw_threshold: int) -> str:
    """'auto' keeps exact search while it is fast enough, HNSW beyond ``hnsw_threshold``."""
    if kind == "auto":
        return "hnsw" if size >= hnsw_threshold else "flat"
    return kind


def build_index(vectors: np.ndarray, kind: str) -> faiss.Index:
    dim = vectors.shape[1]
    index: faiss.Index
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
    else:
        raise ValueError(f"unknown index kind {kind!r}")
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def save_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load_index(path: Path) -> faiss.Index:
    return faiss.read_index(str(path))


def search(index: faiss.Index, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    if index.ntotal == 0 or k <= 0:
        return []
    scores, rows = index.search(query.reshape(1, -1).astype(np.float32), min(k, index.ntotal))
    return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
