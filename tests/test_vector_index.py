"""FAISS index kinds: the auto choice, build/save/load round trips, tuned IVF recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa import vector_index as vi


def _clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres, like topical text embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim))
    x = centres[rng.integers(0, 50, n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_auto_is_exact_below_the_threshold_and_ivf_from_it() -> None:
    assert vi.choose_kind("auto", 999, 1000) == "flat"
    assert vi.choose_kind("auto", 1000, 1000) == "ivf-sq8"
    for kind in vi.KINDS:
        assert vi.choose_kind(kind, 10, 1000) == kind  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown index kind"):
        vi.choose_kind("lsh", 10, 1000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown index kind"):
        vi.build_index(_clustered(10), "lsh")


def test_n_lists_grows_with_size_and_stays_trainable() -> None:
    sizes = [0, 10, 1_000, 100_000, 1_000_000]
    lists = [vi.n_lists(n) for n in sizes]
    assert lists == sorted(lists)
    assert all(
        nl >= 1 and (n == 0 or nl == 1 or n // nl >= vi.MIN_POINTS_PER_LIST)
        for n, nl in zip(sizes, lists, strict=True)
    )
    assert vi.n_lists(1_000_000) == 2048


@pytest.mark.parametrize("kind", vi.KINDS)
def test_round_trip_and_recall(kind: str, tmp_path: Path) -> None:
    data = _clustered(3_000)
    index = vi.build_index(data, kind)
    assert index.ntotal == len(data)
    path = tmp_path / "v.faiss"
    vi.save_index(index, path)
    loaded = vi.load_index(path)
    queries = _clustered(100, seed=1)
    exact = vi.build_index(data, "flat")
    _, truth = exact.search(queries, 10)
    _, found = loaded.search(queries, 10)
    recall = vi.recall_at_k(found, truth)
    if kind == "flat":
        assert recall == 1.0
    elif kind in ("hnsw", "ivf-sq8"):
        assert recall >= 0.9, recall
    else:  # product quantisation trades recall for memory
        assert recall >= 0.4, recall
    if kind.startswith("ivf"):
        assert loaded.nprobe == index.nprobe >= 1  # the tuned nprobe is saved with the index
    hits = vi.search(loaded, queries[0], 5)
    assert len(hits) == 5 and all(0 <= row < len(data) for row, _ in hits)


def test_memory_of_quantised_kinds_is_smaller() -> None:
    data = _clustered(4_000, dim=64)
    sizes = {kind: vi.index_bytes(vi.build_index(data, kind)) for kind in ("flat", "ivf-sq8")}
    assert sizes["ivf-sq8"] < sizes["flat"]
    assert sizes["ivf-sq8"] < 0.4 * sizes["flat"]


def test_tuned_nprobe_meets_the_target_on_its_sample() -> None:
    data = _clustered(10_000)
    index = vi.build_index(data, "ivf-sq8")
    assert 1 <= index.nprobe < index.nlist
    queries = vi.pseudo_queries(data, vi.TUNE_QUERIES, seed=1)  # the tuning sample
    cosines = (
        queries * data[np.random.default_rng(1).choice(len(data), vi.TUNE_QUERIES, replace=False)]
    ).sum(1)
    assert abs(float(cosines.mean()) - vi.QUERY_COSINE) < 0.05
    _, truth = vi.build_index(data, "flat").search(queries, 10)
    _, found = index.search(queries, 10)
    assert vi.recall_at_k(found, truth) >= vi.TARGET_RECALL
    index.nprobe = 1
    _, found = index.search(queries, 10)
    assert vi.recall_at_k(found, truth) < vi.TARGET_RECALL  # tuning had something to do


def test_tiny_and_empty_corpora() -> None:
    for kind in vi.KINDS:
        empty = vi.build_index(np.zeros((0, 16), dtype=np.float32), kind)
        assert empty.ntotal == 0 and vi.search(empty, np.ones(16, np.float32), 3) == []
    for kind in ("ivf-sq8", "hnsw", "flat"):
        small = _clustered(30, dim=16)
        index = vi.build_index(small, kind)
        assert vi.search(index, small[3], 1)[0][0] == 3


def test_recall_at_k_counts_shared_ids() -> None:
    truth = np.array([[1, 2, 3, 4]])
    assert vi.recall_at_k(np.array([[4, 3, 9, -1]]), truth) == 0.5


def test_search_leaves_the_thread_count_of_the_models_alone() -> None:
    # faiss and PyTorch share the OpenMP setting: search runs on one thread, and must put the
    # setting back, or the reader that runs after it on the same thread loses its other cores
    import faiss
    import torch

    before = torch.get_num_threads()
    faiss.omp_set_num_threads(2)
    try:
        index = vi.build_index(np.eye(4, dtype=np.float32), "flat")
        assert vi.search(index, np.eye(4, dtype=np.float32)[0], 2)
        assert faiss.omp_get_max_threads() == 2
        assert torch.get_num_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)
