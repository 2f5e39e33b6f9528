"""BM25 over chunks with the bm25s library (English stop words, Snowball stemming)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from bm25s.tokenization import Tokenizer


def _tokenizer() -> Tokenizer:
    return Tokenizer(stopwords="en", stemmer=Stemmer.Stemmer("english"))


class LexicalIndex:
    def __init__(self, retriever: bm25s.BM25, tokenizer: Tokenizer, size: int) -> None:
        self._retriever = retriever
        self._tokenizer = tokenizer
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        tokenizer = _tokenizer()
        retriever = bm25s.BM25()
        if texts:
            tokens = tokenizer.tokenize(list(texts), return_as="tuple", show_progress=False)
            retriever.index(tokens, show_progress=False)
        return cls(retriever, tokenizer, len(texts))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self.size:
            self._retriever.save(str(directory), show_progress=False)
            self._tokenizer.save_vocab(str(directory))

    @classmethod
    def load(cls, directory: Path, size: int) -> LexicalIndex:
        tokenizer = _tokenizer()
        if not size:
            return cls(bm25s.BM25(), tokenizer, 0)
        retriever = bm25s.BM25.load(str(directory), show_progress=False)
        tokenizer.load_vocab(str(directory))
        return cls(retriever, tokenizer, size)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(row, score) pairs of the best ``k`` chunks with a positive BM25 score."""
        if not self.size or k <= 0:
            return []
        ids = self._tokenizer.tokenize(
            [query], update_vocab=False, return_as="ids", show_progress=False
        )
        if not any(i for i in ids[0]):
            return []
        rows, scores = self._retriever.retrieve(
            ids, k=min(k, self.size), show_progress=False, n_threads=1
        )
        return [
            (int(r), float(s))
            for r, s in zip(rows[0], scores[0], strict=True)
            if s > 0 and np.isfinite(s)
        ]
