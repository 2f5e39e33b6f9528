"""Hybrid retrieval: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank fusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from qa import vector_index
from qa.store import IndexSnapshot
from qa.types import Passage

RetrievalMode = Literal["hybrid", "dense", "lexical"]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = 60
) -> list[tuple[int, float]]:
    """Fuse ranked lists of ids: score(id) = sum over lists of 1 / (k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(slots=True)
class HybridRetriever:
    snapshot: IndexSnapshot
    candidate_k: int = 50
    rrf_k: int = 60
    mode: RetrievalMode = "hybrid"

    def retrieve(self, query: str, query_vector: np.ndarray | None, top_k: int) -> list[Passage]:
        dense: list[tuple[int, float]] = []
        lexical: list[tuple[int, float]] = []
        n = max(self.candidate_k, top_k)
        if self.mode in ("hybrid", "dense"):
            if query_vector is None:
                raise ValueError("dense retrieval needs the query vector")
            dense = vector_index.search(self.snapshot.vectors, query_vector, n)
        if self.mode in ("hybrid", "lexical"):
            lexical = self.snapshot.lexical.search(query, n)
        fused = reciprocal_rank_fusion(
            [[row for row, _ in dense], [row for row, _ in lexical]], k=self.rrf_k
        )
        dense_scores = dict(dense)
        lexical_scores = dict(lexical)
        passages: list[Passage] = []
        for row, score in fused[:top_k]:
            chunk = self.snapshot.chunks[row]
            doc = self.snapshot.documents[chunk.doc_id]
            passages.append(
                Passage(
                    chunk_id=chunk.chunk_id,
                    doc_id=chunk.doc_id,
                    title=doc.title,
                    source=doc.source,
                    start=chunk.start,
                    end=chunk.end,
                    text=chunk.text,
                    score=score,
                    dense_score=dense_scores.get(row),
                    lexical_score=lexical_scores.get(row),
                )
            )
        return passages
