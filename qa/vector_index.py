"""FAISS vector index over normalised embeddings (inner product = cosine).

Kinds (``RAGQA_INDEX_KIND``):

- ``flat``: exact search; memory 4 bytes x dimension per chunk; time grows with the corpus.
- ``hnsw``: graph search over float32 vectors; fast, but more memory than flat and slow to build.
- ``ivf-sq8``: inverted lists over int8 scalar-quantised vectors (a quarter of flat's memory);
  ``nprobe`` is tuned at build time until recall@10 against exact search reaches
  ``TARGET_RECALL`` on pseudo-queries made from the corpus, and is saved with the index.
- ``ivf-pq``: inverted lists over product-quantised codes (48 bytes a vector): the smallest, at
  a cost in recall.
- ``auto``: exact search below the threshold (``RAGQA_HNSW_THRESHOLD``), ``ivf-sq8`` above;
  ``bench/index_scale.py`` measures why (README, Performance).
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

from qa.settings import IndexKind

KINDS = ("flat", "hnsw", "ivf-sq8", "ivf-pq")
APPROXIMATE_DEFAULT = "ivf-sq8"
TARGET_RECALL = 0.98  # on pseudo-queries; real questions then reach about 0.96 (Performance)
QUERY_COSINE = 0.3  # how close a pseudo-query stays to the row it is made from
NPROBES = (4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)
TUNE_QUERIES = 200
SEARCH_THREADS = 1
MIN_POINTS_PER_LIST = 39  # FAISS's k-means wants at least this many training points a centroid


def choose_kind(kind: IndexKind, size: int, hnsw_threshold: int) -> str:
    """'auto' keeps exact search while it is fast enough, an IVF-SQ8 index from the threshold."""
    if kind == "auto":
        return APPROXIMATE_DEFAULT if size >= hnsw_threshold else "flat"
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose auto or one of {KINDS}")
    return kind


def n_lists(size: int) -> int:
    """About 2 x sqrt(n) inverted lists (a power of two), each with enough points to train on."""
    wanted = 2 ** round(math.log2(max(1.0, 2 * math.sqrt(size))))
    return max(1, min(wanted, size // MIN_POINTS_PER_LIST))


def build_index(vectors: np.ndarray, kind: str, seed: int = 0) -> faiss.Index:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    index: faiss.Index
    if kind == "flat" or (kind.startswith("ivf") and len(vectors) == 0):
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
    elif kind in ("ivf-sq8", "ivf-pq"):
        return _build_ivf(vectors, kind, seed)
    else:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {KINDS}")
    if len(vectors):
        index.add(vectors)
    return index


def _build_ivf(vectors: np.ndarray, kind: str, seed: int) -> faiss.Index:
    n, dim = vectors.shape
    nlist = n_lists(n)
    quantizer = faiss.IndexFlatIP(dim)
    index: faiss.IndexIVF
    if kind == "ivf-sq8":
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
    else:
        m = next(m for m in (48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if dim % m == 0)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    train_size = min(n, max(64 * nlist, 10_000), 150_000)
    if kind == "ivf-pq":
        train_size = min(n, max(train_size, 256 * MIN_POINTS_PER_LIST))
    sample = vectors[rng.choice(n, train_size, replace=False)] if train_size < n else vectors
    index.train(sample)
    index.add(vectors)
    index.nprobe = tune_nprobe(index, vectors, seed=seed)
    return index


def tune_nprobe(
    index: faiss.IndexIVF,
    vectors: np.ndarray,
    target: float = TARGET_RECALL,
    k: int = 10,
    seed: int = 0,
) -> int:
    """The smallest nprobe whose recall@k against exact search on sampled rows reaches target."""
    n = len(vectors)
    if index.nlist <= 1 or n <= k:
        return max(1, index.nlist)
    queries = pseudo_queries(vectors, min(TUNE_QUERIES, n), seed=seed + 1)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    for nprobe in (p for p in NPROBES if p < index.nlist):
        index.nprobe = nprobe
        _, found = index.search(queries, k)
        if recall_at_k(found, truth) >= target:
            return nprobe
    return min(index.nlist, NPROBES[-1])


def pseudo_queries(vectors: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Sampled rows moved away by noise to a cosine of about ``QUERY_COSINE`` to their row.

    A question is not a copy of a passage: rows used as queries find themselves and their own
    inverted list, and overstate recall. Real BBC questions have a cosine of about 0.49 to
    their nearest chunk; at cosine 0.3 these pseudo-queries need the same nprobe as the real
    questions for recall@10 of 0.95-0.97 (nprobe 32 at 10k and 100k chunks, IVF-SQ8).
    """
    rng = np.random.default_rng(seed)
    rows = vectors[rng.choice(len(vectors), count, replace=False)].astype(np.float64)
    dim = vectors.shape[1]
    sigma = math.sqrt((1 / QUERY_COSINE**2 - 1) / dim)
    noisy = rows + rng.normal(scale=sigma, size=rows.shape)
    noisy /= np.maximum(np.linalg.norm(noisy, axis=1, keepdims=True), 1e-12)
    return noisy.astype(np.float32)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the exact top-k found by the approximate search."""
    hits = sum(
        len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)
    )
    return hits / max(1, truth.size)


def index_bytes(index: faiss.Index) -> int:
    """Serialised size: what the index costs in memory once loaded."""
    return int(faiss.serialize_index(index).nbytes)


def save_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load_index(path: Path) -> faiss.Index:
    return faiss.read_index(str(path))


def search(index: faiss.Index, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    if index.ntotal == 0 or k <= 0:
        return []
    # one question is too little work to share: OpenMP threads spin-waiting for each other cost
    # more than they save (flat, 10k chunks, 2 busy cores: p50 0.29 ms on one thread, 16 ms on
    # two; README Performance). The setting applies to the calling thread's parallel regions,
    # and PyTorch reads the same OpenMP setting, so it is put back afterwards: left at one, it
    # would make the reader that runs next on this thread use one core.
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(SEARCH_THREADS)
    try:
        scores, rows = index.search(query.reshape(1, -1).astype(np.float32), min(k, index.ntotal))
    finally:
        faiss.omp_set_num_threads(previous)
    return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
